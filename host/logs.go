package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/trellis-run/trellis/host/execlog"
	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
	"github.com/trellis-run/trellis/logstore/writer"
)

// execLog is the host's execution log: the store queries read, the writer every execution
// writes through (spooled to disk before it is acknowledged), and the retention loop.
type execLog struct {
	store  logstore.Store
	writer *writer.Writer
	// ownSpool is the private spool this process uses when another holds the main one; it is
	// removed once drained.
	ownSpool string

	stopRetention context.CancelFunc
	retentionDone sync.WaitGroup
}

// logPart starts the execution log: a spooled writer in front of the log store, and retention.
// The recorder every other part writes rows through is made here, labelled with this process.
func (h *Host) logPart() part {
	return part{name: "the execution log",
		start: func(ctx context.Context) error {
			l, err := openExecLog(ctx, h.cfg, h.backends.Load().Logs)
			if err != nil {
				return err
			}
			h.log.Store(l)
			h.rec.Store(execlog.NewRecorder(l.writer, execlog.HostLabel(h.machine, h.instance)))
			return nil
		},
		stop: func(ctx context.Context) error {
			h.rec.Store(nil)
			if l := h.log.Swap(nil); l != nil {
				return l.close(ctx)
			}
			return nil
		}}
}

// openExecLog starts a writer in front of store (which the backends own and close).
func openExecLog(ctx context.Context, cfg Config, store logstore.Store) (*execLog, error) {
	l := &execLog{store: store}
	flush := 100 * time.Millisecond // embedded: rows show up quickly; inserts are cheap
	if cfg.ClickHouseDSN != "" {
		flush = time.Second // ClickHouse wants about one insert per second per table
	}
	var err error
	l.writer, err = startWriter(ctx, l.store, cfg.LogSpoolDir, flush)
	if errors.Is(err, writer.ErrSpoolLocked) {
		// Another process (a running `serve`, beside this `trellis call`) owns the spool: use a
		// spool of our own, which a later owner of the main spool adopts if we die with rows in it.
		l.ownSpool = filepath.Join(cfg.LogSpoolDir+".d", vocab.NewID("spool_"))
		l.writer, err = startWriter(ctx, l.store, l.ownSpool, flush)
	} else if err == nil {
		adoptOrphanSpools(ctx, l.store, cfg.LogSpoolDir+".d")
	}
	if err != nil {
		return nil, fmt.Errorf("start the writer: %w", err)
	}
	if cfg.LogRetention > 0 {
		rctx, cancel := context.WithCancel(context.Background())
		l.stopRetention = cancel
		l.retentionDone.Add(1)
		go l.retain(rctx, cfg.LogRetention)
	}
	return l, nil
}

// retain drops whole days older than the retention period, at start and then hourly.
func (l *execLog) retain(ctx context.Context, keep time.Duration) {
	defer l.retentionDone.Done()
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	for {
		cutoff := time.Now().Add(-keep).UTC().Truncate(24 * time.Hour)
		if err := l.store.DropBefore(ctx, cutoff); err != nil && ctx.Err() == nil {
			slog.Error("log retention: drop old days", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// close stops retention and flushes what the writer can; the store is the backends' to close.
func (l *execLog) close(ctx context.Context) error {
	if l.stopRetention != nil {
		l.stopRetention()
		l.retentionDone.Wait()
	}
	err := l.writer.Stop(ctx)
	if err == nil && l.ownSpool != "" {
		_ = os.RemoveAll(l.ownSpool)
	}
	return err
}

func startWriter(ctx context.Context, store logstore.Store, dir string, flush time.Duration) (*writer.Writer, error) {
	w, err := writer.New(store, writer.Options{SpoolDir: dir, FlushInterval: flush})
	if err != nil {
		return nil, err
	}
	if err := w.Start(ctx); err != nil {
		return nil, err
	}
	return w, nil
}

// adoptOrphanSpools delivers the rows of private spools whose processes died (their lock is
// free) and removes them; spools still locked belong to live processes and are left alone.
func adoptOrphanSpools(ctx context.Context, store logstore.Store, parent string) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		dir := filepath.Join(parent, e.Name())
		w, err := startWriter(ctx, store, dir, time.Second)
		if err != nil {
			continue
		}
		if err := w.Stop(ctx); err == nil {
			_ = os.RemoveAll(dir)
		}
	}
}

// LogStore is the execution log queries read; nil before Start.
func (h *Host) LogStore() logstore.Store {
	if l := h.log.Load(); l != nil {
		return l.store
	}
	return nil
}

// LogWriter is what executions write their log rows through; nil before Start.
func (h *Host) LogWriter() *writer.Writer {
	if l := h.log.Load(); l != nil {
		return l.writer
	}
	return nil
}

// LogStats are the log writer's counters for /api/health; nil before Start.
func (h *Host) LogStats() any {
	if w := h.LogWriter(); w != nil {
		return w.Stats()
	}
	return nil
}

// logServiceCall records one service call made from the CLI or HTTP as a finished node of its
// own request, so every execution is in the log.
func (h *Host) logServiceCall(ctx context.Context, call jsvm.Call, start time.Time, res jsvm.Result, callErr error) {
	rec := h.rec.Load()
	if rec == nil {
		return
	}
	kwargs, _ := json.Marshal(call.Args)
	end := time.Now()
	row := rec.Row(execlog.Node{Kind: logstore.KindService, FullName: call.Element, Sender: call.Element + "." + call.Function,
		RequestID: call.RequestID, NodeID: call.NodeID, CreatedAt: start, Kwargs: kwargs},
		logstore.StatusSuccess, logstore.StageDone, end)
	if execlog.Finish(&row, start, end, res, callErr) != nil {
		row.Status, row.Stage = logstore.StatusFail, logstore.StageFailed
	}
	rec.Write(ctx, row)
}
