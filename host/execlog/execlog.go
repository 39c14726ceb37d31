// Package execlog builds and writes the execution log's rows for every part that runs code:
// the event engine, the task center, service calls and hooks. It owns the one row constructor
// (fresh id, this host's label, the seq that orders rows of one millisecond), the one filler of
// a finished run's outcome, and the sink rows go to.
//
// It must not decide what a part records or when: the engine and the task center choose the
// status and stage of each state; this package only makes every row the same way.
package execlog

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

// Sink receives the log rows of every change of state; the host's log writer is one. Write
// returns once the rows are durable (spooled), not once they are queryable; Flush returns once
// every row written so far is in the store, so a part can read a node's latest state (callbacks,
// resend) including what this host wrote a moment ago.
type Sink interface {
	Write(ctx context.Context, rows ...logstore.Row) error
	Flush(ctx context.Context) error
}

// Node is what every row of one node repeats, whatever its state.
type Node struct {
	Kind         string // logstore.KindEvent, KindTask, KindService, KindHook, KindLag
	FullName     string // the element that handles it (a listener, a task, a service)
	Sender       string
	EventType    string
	EventID      string
	RequestID    string
	NodeID       string
	ParentNodeID string
	Attempt      int
	CreatedAt    time.Time
	Kwargs       json.RawMessage
}

// seq orders rows of one node recorded within the same millisecond by this process. One counter
// for every part, so an engine row and a hook row of one node never tie.
var seq atomic.Uint32

// Recorder makes and writes the rows of one host. It is safe for concurrent use.
type Recorder struct {
	sink Sink
	host string
}

// NewRecorder writes rows to sink, labelled with host (HostLabel).
func NewRecorder(sink Sink, host string) *Recorder { return &Recorder{sink: sink, host: host} }

// HostLabel is how rows name the host that wrote them: the machine and this process's instance
// id ("machine/inst_…"), the same words the engine uses for broadcast receivers.
func HostLabel(machine, instance string) string { return machine + "/" + instance }

// Host is the label rows carry.
func (r *Recorder) Host() string { return r.host }

// Row makes the row of one state of node n, recorded at at.
func (r *Recorder) Row(n Node, status, stage string, at time.Time) logstore.Row {
	attempt := n.Attempt
	if attempt < 1 {
		attempt = 1
	}
	return logstore.Row{
		ID: vocab.NewID("st_"), Kind: n.Kind, FullName: n.FullName, Sender: n.Sender, EventType: n.EventType,
		EventID: n.EventID, Status: status, Stage: stage, RequestID: n.RequestID, NodeID: n.NodeID,
		ParentNodeID: n.ParentNodeID, Attempt: attempt, CreatedAt: n.CreatedAt, RecordedAt: at,
		Seq: seq.Add(1), Kwargs: n.Kwargs, Host: r.host,
	}
}

// Next makes a later state of the node prev recorded: prev's node fields, outcome cleared.
func (r *Recorder) Next(prev logstore.Row, status, stage string, at time.Time) logstore.Row {
	row := r.Row(NodeOf(prev), status, stage, at)
	row.StartTime = prev.StartTime
	return row
}

// NodeOf reads a row's node fields back.
func NodeOf(row logstore.Row) Node {
	return Node{Kind: row.Kind, FullName: row.FullName, Sender: row.Sender, EventType: row.EventType, EventID: row.EventID,
		RequestID: row.RequestID, NodeID: row.NodeID, ParentNodeID: row.ParentNodeID, Attempt: row.Attempt,
		CreatedAt: row.CreatedAt, Kwargs: row.Kwargs}
}

// Write hands rows to the sink. The sink spools them durably, so a failure here is a full or
// broken spool, which the host reports in its health: the run it records is not failed for it.
func (r *Recorder) Write(ctx context.Context, rows ...logstore.Row) {
	if len(rows) == 0 {
		return
	}
	if err := r.sink.Write(ctx, rows...); err != nil {
		slog.Error("execution log: rows not written", "rows", len(rows), "fullName", rows[0].FullName, "err", err)
	}
}

// WriteErr is Write for a caller that must know the rows were not written (a callback that is
// only complete once recorded).
func (r *Recorder) WriteErr(ctx context.Context, rows ...logstore.Row) error {
	return r.sink.Write(ctx, rows...)
}

// Flush waits until every row written so far is queryable.
func (r *Recorder) Flush(ctx context.Context) error { return r.sink.Flush(ctx) }

// Finish fills what the row of a finished run carries: its times, its console output, and its
// result — or, when it failed, its error (a throw or a limit: the sandbox's code and JS stack;
// ctx.fail(reason): code failed). It returns that error, nil on success, so a part that keeps
// its own record of the run (a task record) stores the same words.
func Finish(row *logstore.Row, start, end time.Time, res jsvm.Result, err error) *logstore.RowError {
	row.StartTime, row.EndTime, row.Duration = start, end, end.Sub(start).Milliseconds()
	if len(res.Logs) > 0 {
		row.Logs, _ = json.Marshal(res.Logs)
	}
	switch {
	case err != nil:
		je := jsvm.AsError(err)
		row.Error = &logstore.RowError{Code: je.Code, Message: je.Message, Stack: je.Stack}
	case res.Failed != nil:
		row.Error = &logstore.RowError{Code: vocab.CodeFailed, Message: *res.Failed}
	default:
		if b, merr := vocab.EncodeJSON(res.Value); merr == nil {
			row.Result = b
		}
	}
	return row.Error
}
