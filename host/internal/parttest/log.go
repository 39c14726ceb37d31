package parttest

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/backends"
	"github.com/trellis-run/trellis/host/execlog"
	"github.com/trellis-run/trellis/logstore"
	"github.com/trellis-run/trellis/logstore/writer"
)

// Log is one test's execution log: the embedded store (logstore/localstore) in t.TempDir() behind
// a started writer, and the Sink in front of the writer that the part's recorders write to.
type Log struct {
	Store  logstore.Store
	Writer *writer.Writer
	Sink   *Sink
}

// OpenLog opens a Log in t.TempDir(). When the test ends the writer stops (failing the test if
// that takes longer than WaitLimit) and the store closes.
func OpenLog(t testing.TB) *Log {
	t.Helper()
	dir := t.TempDir()
	// The embedded store, opened as the host opens it when no ClickHouse is configured: only
	// host/backends names concrete backends.
	store, err := backends.OpenLogStore(context.Background(), host.Config{DataDir: dir})
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	w, err := writer.New(store, writer.Options{SpoolDir: filepath.Join(dir, "spool"), FlushInterval: 20 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, w.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), WaitLimit)
		defer cancel()
		require.NoError(t, w.Stop(ctx))
	})
	return &Log{Store: store, Writer: w, Sink: NewSink(w)}
}

// Recorder is a recorder into the log for the host hostName/instanceID (execlog.HostLabel).
func (l *Log) Recorder(hostName, instanceID string) *execlog.Recorder {
	return execlog.NewRecorder(l.Sink, execlog.HostLabel(hostName, instanceID))
}

// Attempts flushes the writer and returns every state of node nodeID in the store, oldest first.
func (l *Log) Attempts(t testing.TB, nodeID string) []logstore.Row {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, l.Writer.Flush(ctx))
	rows, err := l.Store.Attempts(ctx, nodeID)
	require.NoError(t, err)
	return rows
}

// AwaitStage waits until node nodeID has a row of stage with attempt (0: any) and returns the
// node's rows as the store orders them (Attempts).
func (l *Log) AwaitStage(t testing.TB, nodeID, stage string, attempt int) []logstore.Row {
	t.Helper()
	what := fmt.Sprintf("node %s to reach %s", nodeID, stage)
	if attempt != 0 {
		what += fmt.Sprintf(" (attempt %d)", attempt)
	}
	l.Sink.Await(t, what, func(rows []logstore.Row) bool {
		return slices.ContainsFunc(rows, func(r logstore.Row) bool {
			return r.NodeID == nodeID && r.Stage == stage && (attempt == 0 || r.Attempt == attempt)
		})
	})
	return l.Attempts(t, nodeID)
}

// Sink is an execlog.Sink that passes rows on to the next sink (a writer, and so the store the
// part reads) and tells the test of every write.
type Sink struct {
	next    execlog.Sink
	mu      sync.Mutex
	rows    []logstore.Row
	changed chan struct{}
}

// NewSink returns a Sink in front of next.
func NewSink(next execlog.Sink) *Sink { return &Sink{next: next, changed: make(chan struct{})} }

// Write passes rows on, then keeps them and wakes every Await.
func (s *Sink) Write(ctx context.Context, rows ...logstore.Row) error {
	if err := s.next.Write(ctx, rows...); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rows = append(s.rows, rows...)
	close(s.changed)
	s.changed = make(chan struct{})
	return nil
}

// Flush flushes the next sink.
func (s *Sink) Flush(ctx context.Context) error { return s.next.Flush(ctx) }

// All is every row written so far, in the order the writes happened.
func (s *Sink) All() []logstore.Row {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.rows)
}

// Await waits until cond holds over the rows written so far and returns them. After WaitLimit it
// fails the test, naming what it waited for and listing the rows.
func (s *Sink) Await(t testing.TB, what string, cond func(rows []logstore.Row) bool) []logstore.Row {
	t.Helper()
	timeout := time.NewTimer(WaitLimit)
	defer timeout.Stop()
	for {
		s.mu.Lock()
		rows, changed := slices.Clone(s.rows), s.changed
		s.mu.Unlock()
		if cond(rows) {
			return rows
		}
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("timed out waiting for %s; rows so far:\n%s", what, describeRows(rows))
		}
	}
}

func describeRows(rows []logstore.Row) string {
	var sb strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&sb, "  %s %s %s/%s@%d\n", r.FullName, r.NodeID, r.Status, r.Stage, r.Attempt)
	}
	return sb.String()
}
