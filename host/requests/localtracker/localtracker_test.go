package localtracker_test

import (
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
