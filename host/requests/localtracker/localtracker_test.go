package localtracker_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/requests"
	"github.com/trellis-run/trellis/host/requests/localtracker"
	"github.com/trellis-run/trellis/host/requests/requeststest"
)

func TestConformance(t *testing.T) {
	path := filepath.Join(t.TempDir(), "requests.db")
	requeststest.Run(t, func(t *testing.T) requests.Tracker {
		tr, err := localtracker.Open(path)
		require.NoError(t, err)
		t.Cleanup(func() { _ = tr.Close() })
		return tr
	})
}

// What was opened survives closing the file and opening it again (a host restart).
func TestSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "requests.db")
	tr, err := localtracker.Open(path)
	require.NoError(t, err)
	require.NoError(t, tr.OpenNodes(ctx, "req_1", "a", "b"))
	fin, err := tr.CloseNode(ctx, "req_1", "a")
	require.NoError(t, err)
	require.False(t, fin)
	require.NoError(t, tr.Close())

	tr, err = localtracker.Open(path)
	require.NoError(t, err)
	defer func() { _ = tr.Close() }()
	fin, err = tr.CloseNode(ctx, "req_1", "a")
	require.NoError(t, err)
	require.False(t, fin, "a's close was recorded before the restart")
	fin, err = tr.CloseNode(ctx, "req_1", "b")
	require.NoError(t, err)
	require.True(t, fin, "b stayed open across the restart")
}
