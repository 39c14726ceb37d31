package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/logstore"
	"github.com/trellis-run/trellis/logstore/chstore"
	"github.com/trellis-run/trellis/logstore/localstore"
	"github.com/trellis-run/trellis/logstore/writer"
)

// execLog is the host's execution log: the store queries read, the writer every execution
// writes through (spooled to disk before it is acknowledged), and the retention loop.
type execLog struct {
	store  logstore.Store
	writer *writer.Writer
	kind   string // "embedded" or "clickhouse"
	// ownSpool is the private spool this process uses when another holds the main one; it is
	// removed once drained.
	ownSpool string

	stopRetention context.CancelFunc
	retentionDone sync.WaitGroup
}

// openExecLog opens the configured store and starts a writer in front of it.
func openExecLog(ctx context.Context, cfg Config) (*execLog, error) {
	l := &execLog{kind: "embedded"}
	flush := 100 * time.Millisecond // embedded: rows show up quickly; inserts are cheap
	if cfg.ClickHouseDSN != "" {
		l.kind = "clickhouse"
		flush = time.Second // ClickHouse wants about one insert per second per table
	}
	var err error
	if l.store, err = OpenLogStore(ctx, cfg); err != nil {
		return nil, err
	}
	l.writer, err = startWriter(ctx, l.store, cfg.LogSpoolDir, flush)
	if errors.Is(err, writer.ErrSpoolLocked) {
		// Another process (a running `serve`, beside this `trellis call`) owns the spool: use a
		// spool of our own, which a later owner of the main spool adopts if we die with rows in it.
		l.ownSpool = filepath.Join(cfg.LogSpoolDir+".d", engine.NewID("spool_"))
		l.writer, err = startWriter(ctx, l.store, l.ownSpool, flush)
	} else if err == nil {
		adoptOrphanSpools(ctx, l.store, cfg.LogSpoolDir+".d")
	}
	if err != nil {
		_ = l.store.Close()
		return nil, fmt.Errorf("host: start the execution log writer: %w", err)
	}
	if cfg.LogRetention > 0 {
		rctx, cancel := context.WithCancel(context.Background())
		l.stopRetention = cancel
		l.retentionDone.Add(1)
		go l.retain(rctx, cfg.LogRetention)
	}
	return l, nil
}

// OpenLogStore opens the execution log cfg names — ClickHouse with ClickHouseDSN, else the
// embedded store in DataDir/logs — for the host and for `trellis logs`.
func OpenLogStore(ctx context.Context, cfg Config) (logstore.Store, error) {
	cfg = cfg.WithDefaults()
	var (
		store logstore.Store
		err   error
	)
	if cfg.ClickHouseDSN != "" {
		store, err = chstore.Open(ctx, cfg.ClickHouseDSN, chstore.Options{Cluster: cfg.ClickHouseCluster, Distributed: cfg.ClickHouseCluster != ""})
	} else {
		store, err = localstore.Open(filepath.Join(cfg.DataDir, "logs"), localstore.Options{})
	}
	if err != nil {
		return nil, fmt.Errorf("host: open the execution log: %w", err)
	}
	return store, nil
}

// retain drops whole days older than the retention period, at start and then hourly.
func (l *execLog) retain(ctx context.Context, keep time.Duration) {
	defer l.retentionDone.Done()
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	for {
		cutoff := time.Now().Add(-keep).UTC().Truncate(24 * time.Hour)
		if err := l.store.DropBefore(ctx, cutoff); err != nil && ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "trellis: log retention: %v\n", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// close stops retention, flushes what the writer can and closes the store.
func (l *execLog) close(ctx context.Context) error {
	if l.stopRetention != nil {
		l.stopRetention()
		l.retentionDone.Wait()
	}
	err := l.writer.Stop(ctx)
	if err == nil && l.ownSpool != "" {
		_ = os.RemoveAll(l.ownSpool)
	}
	return errors.Join(err, l.store.Close())
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

// hostName names this process in the log rows of service calls ("machine:pid"). It is not the
// engine's host name: broadcastIdentifier "host" must stay the same across restarts.
var hostName = func() string {
	name, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%s:%d", name, os.Getpid())
}()

// logServiceCall records one service call made from the CLI or HTTP as a finished node of its
// own request, so every execution is in the log.
func (h *Host) logServiceCall(ctx context.Context, fullName, fn string, args []any, start time.Time, res jsvm.Result, callErr error) {
	w := h.LogWriter()
	if w == nil {
		return
	}
	end := time.Now()
	row := logstore.Row{
		ID: engine.NewID("st_"), Kind: logstore.KindService, FullName: fullName, Sender: fullName + "." + fn,
		Status: logstore.StatusSuccess, RequestID: engine.NewID("req_"), NodeID: engine.NewID("node_"),
		CreatedAt: start, RecordedAt: end, StartTime: start, EndTime: end,
		Duration: end.Sub(start).Milliseconds(), Host: hostName,
	}
	row.Kwargs, _ = json.Marshal(args)
	if len(res.Logs) > 0 {
		row.Logs, _ = json.Marshal(res.Logs)
	}
	if callErr != nil {
		je := jsvm.AsError(callErr)
		row.Status, row.Stage = logstore.StatusFail, "failed"
		row.Error = &logstore.RowError{Code: je.Code, Message: je.Message, Stack: je.Stack}
	} else if b, err := json.Marshal(res.Value); err == nil {
		row.Result = b
	}
	if err := w.Write(ctx, row); err != nil {
		fmt.Fprintf(os.Stderr, "trellis: write log row of %s.%s: %v\n", fullName, fn, err)
	}
}
