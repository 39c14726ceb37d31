package locallock_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/timers/recurring"
	"github.com/trellis-run/trellis/host/timers/recurring/coordtest"
	"github.com/trellis-run/trellis/host/timers/recurring/locallock"
)

func open(t testing.TB, path string) *locallock.Coordinator {
	t.Helper()
	c, err := locallock.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestConformance(t *testing.T) {
	t.Parallel()
	var paths sync.Map // Coordinator → its file; subtests run in parallel
	coordtest.Run(t, coordtest.Backend{
		Open: func(t *testing.T, n int) []recurring.Coordinator {
			path := filepath.Join(t.TempDir(), "data", "recurring.db")
			c := open(t, path)
			paths.Store(c, path)
			out := make([]recurring.Coordinator, n)
			for i := range out {
				out[i] = c
			}
			return out
		},
		Reopen: func(t *testing.T, c recurring.Coordinator) recurring.Coordinator {
			require.NoError(t, c.(*locallock.Coordinator).Close())
			path, ok := paths.Load(c)
			require.True(t, ok)
			return open(t, path.(string))
		},
	})
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	_, err := locallock.Open("")
	require.ErrorIs(t, err, recurring.ErrInvalidArgument)

	// A file that is not SQLite.
	bad := filepath.Join(t.TempDir(), "recurring.db")
	require.NoError(t, os.WriteFile(bad, []byte("this is not a database, just text long enough to have a header......."), 0o644))
	_, err = locallock.Open(bad)
	require.Error(t, err)
	require.Contains(t, err.Error(), bad, "the error names the file")

	// A directory where the file should be.
	dir := t.TempDir()
	_, err = locallock.Open(dir)
	require.Error(t, err)
}

// Old claims are pruned, but the last tick of a template survives pruning.
func TestClaimsSurviveManyTicks(t *testing.T) {
	t.Parallel()
	c := open(t, filepath.Join(t.TempDir(), "recurring.db"))
	ctx := context.Background()
	at := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 2100 { // crosses the prune threshold twice
		ok, err := c.ClaimTick(ctx, "tasks.Many", at.Add(time.Duration(i)*time.Second))
		require.NoError(t, err)
		require.True(t, ok)
	}
	last, ok, err := c.LastTick(ctx, "tasks.Many")
	require.NoError(t, err)
	require.True(t, ok)
	require.True(t, last.Equal(at.Add(2099*time.Second)))
	ok, err = c.ClaimTick(ctx, "tasks.Many", at)
	require.NoError(t, err)
	require.False(t, ok, "claims younger than a day (real time) are kept")
}
