package writer

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

// StartShared starts a writer on the spool in dir for a process that may run beside another
// owner of it — a `trellis call` beside a running `serve` on one data directory. When dir's
// spool is held, the writer uses a private spool under dir + ".d" instead, removed by Stop once
// it has drained; one left behind by a process that died with rows in it is adopted (its rows
// inserted, then removed) by the next process that owns dir's spool. opts.SpoolDir is ignored.
func StartShared(ctx context.Context, store logstore.Store, dir string, opts Options) (*Writer, error) {
	opts.SpoolDir = dir
	w, err := start(ctx, store, opts)
	if errors.Is(err, ErrSpoolLocked) {
		opts.SpoolDir = filepath.Join(dir+".d", vocab.NewID("spool_"))
		if w, err = start(ctx, store, opts); err == nil {
			w.private = true
		}
		return w, err
	}
	if err != nil {
		return nil, err
	}
	adoptOrphans(ctx, store, dir+".d", opts)
	return w, nil
}

func start(ctx context.Context, store logstore.Store, opts Options) (*Writer, error) {
	w, err := New(store, opts)
	if err != nil {
		return nil, err
	}
	if err := w.Start(ctx); err != nil {
		return nil, err
	}
	return w, nil
}

// adoptOrphans delivers the rows of private spools whose processes died (their lock is free)
// and removes them; spools still locked belong to live processes and are left alone.
func adoptOrphans(ctx context.Context, store logstore.Store, parent string, opts Options) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		opts.SpoolDir = filepath.Join(parent, e.Name())
		w, err := start(ctx, store, opts)
		if err != nil {
			continue
		}
		w.private = true
		_ = w.Stop(ctx)
	}
}
