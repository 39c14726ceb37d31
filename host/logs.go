package host

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/trellis-run/trellis/host/execlog"
	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/logstore"
	"github.com/trellis-run/trellis/logstore/writer"
)

// LogWriter is what executions write their log rows through: a spool in the data directory
// (logstore/writer) or, in a cluster, the buffer every host shares (Backends.LogBuffer). Write
// returns once the rows are durable there; Stop inserts what it can and keeps the rest for later.
type LogWriter interface {
	execlog.Sink
	Stop(ctx context.Context) error
	Stats() writer.Stats
}

// execLog is the host's execution log: the store queries read, the writer every execution
// writes through (durable before it is acknowledged), and the retention loop.
type execLog struct {
	store  logstore.Store
	writer LogWriter
	log    *slog.Logger

	stopRetention context.CancelFunc
	retentionDone sync.WaitGroup
}

// logPart starts the execution log: a spooled writer in front of the log store, and retention.
// The recorder every other part writes rows through is made here, labelled with this process.
func (h *Host) logPart() part {
	return part{name: "the execution log",
		start: func(ctx context.Context) error {
			b := h.backends.Load()
			l, err := openExecLog(ctx, h.cfg, b.Logs, b.LogBuffer, h.instance)
			if err != nil {
				return err
			}
			h.log.Store(l)
			h.rec.Store(execlog.NewRecorder(h.observed(l.writer), execlog.HostLabel(h.machine, h.instance)))
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

// openExecLog starts a writer in front of store (which the backends own and close): the
// cluster's shared buffer when the backends have one, else the data directory's spool or, beside
// a process that holds it, a private one (writer.StartShared).
func openExecLog(ctx context.Context, cfg Config, store logstore.Store, buffer func(context.Context, logstore.Store, string) (LogWriter, error), instance string) (*execLog, error) {
	var w LogWriter
	var err error
	if buffer != nil {
		w, err = buffer(ctx, store, instance)
	} else {
		flush := 100 * time.Millisecond // embedded: rows show up quickly; inserts are cheap
		if cfg.ClickHouseDSN != "" {
			flush = time.Second // ClickHouse wants about one insert per second per table
		}
		w, err = writer.StartShared(ctx, store, cfg.LogSpoolDir, writer.Options{FlushInterval: flush, Logger: cfg.Logger})
	}
	if err != nil {
		return nil, fmt.Errorf("start the writer: %w", err)
	}
	l := &execLog{store: store, writer: w, log: cfg.Logger}
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
			l.log.Error("log retention: drop old days", "err", err)
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
	return l.writer.Stop(ctx)
}

// LogStore is the execution log queries read; nil before Start.
func (h *Host) LogStore() logstore.Store {
	if l := h.log.Load(); l != nil {
		return l.store
	}
	return nil
}

// LogWriter is what executions write their log rows through; nil before Start.
func (h *Host) LogWriter() LogWriter {
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
