package writer

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A second process on one spool writes through a private spool of its own, removed once
// drained; a private spool left by a process that died with rows in it is adopted by the next
// owner of the main spool: its rows inserted, the directory removed.
func TestStartSharedUsesAPrivateSpoolBesideTheOwner(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "log-spool")
	store := newMemStore()
	opts := Options{FlushInterval: 10 * time.Millisecond}

	owner, err := StartShared(ctx, store, dir, opts)
	require.NoError(t, err)
	require.False(t, owner.private)
	beside, err := StartShared(ctx, store, dir, opts)
	require.NoError(t, err)
	require.True(t, beside.private)
	require.Equal(t, filepath.Dir(beside.opts.SpoolDir), dir+".d")

	require.NoError(t, owner.Write(ctx, testRows(0, 3)...))
	require.NoError(t, beside.Write(ctx, testRows(3, 4)...))
	store.waitCount(t, 7, 10*time.Second)
	require.NoError(t, beside.Stop(ctx))
	require.NoDirExists(t, beside.opts.SpoolDir, "a drained private spool is removed")

	// A process beside the owner dies with rows it acknowledged still in its private spool.
	dying, err := StartShared(ctx, newMemStore(), dir, Options{FlushInterval: time.Hour, BatchRows: 1000})
	require.NoError(t, err)
	require.True(t, dying.private)
	require.NoError(t, dying.Write(ctx, testRows(10, 5)...))
	dying.crash()
	require.DirExists(t, dying.opts.SpoolDir)

	// The owner stops; the next owner of the main spool adopts the orphan.
	require.NoError(t, owner.Stop(ctx))
	next, err := StartShared(ctx, store, dir, opts)
	require.NoError(t, err)
	require.False(t, next.private)
	store.waitCount(t, 12, 10*time.Second)
	rows, _, _ := store.snapshot()
	for _, r := range testRows(10, 5) {
		require.Contains(t, rows, r.ID, "the dead process's acknowledged rows reach the store")
	}
	require.NoDirExists(t, dying.opts.SpoolDir, "the adopted spool is removed")
	entries, err := os.ReadDir(dir + ".d")
	require.NoError(t, err)
	require.Empty(t, entries)
	require.NoError(t, next.Stop(ctx))
}
