package localtracker

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/requests"
)

// A request expires as a whole, Retention after its newest node; a request with a newer node
// keeps its old ones.
func TestPruneByRequest(t *testing.T) {
	ctx := context.Background()
	tr, err := Open(filepath.Join(t.TempDir(), "requests.db"))
	require.NoError(t, err)
	defer func() { _ = tr.Close() }()
	old := time.Now().Unix() - requests.Retention - 60
	for _, row := range []struct{ req, node string }{{"stale", "a"}, {"stale", "b"}, {"busy", "old"}} {
		_, err := tr.db.Exec(`INSERT INTO open_nodes (request_id, node_id, opened_at) VALUES (?, ?, ?)`, row.req, row.node, old)
		require.NoError(t, err)
	}
	require.NoError(t, tr.OpenNodes(ctx, "busy", "new"))
	tr.lastPrune = 0                                    // the next batch prunes
	require.NoError(t, tr.OpenNodes(ctx, "other", "x")) // that batch
	var n int
	require.NoError(t, tr.db.QueryRow(`SELECT count(*) FROM open_nodes WHERE request_id = 'stale'`).Scan(&n))
	require.Zero(t, n, "the stale request is gone")
	fin, err := tr.CloseNode(ctx, "busy", "new")
	require.NoError(t, err)
	require.False(t, fin, "busy's old node was kept: its request had a newer one")
	fin, err = tr.CloseNode(ctx, "busy", "old")
	require.NoError(t, err)
	require.True(t, fin)
}
