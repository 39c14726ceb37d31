package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/logstore"
)

// Stages recorded by the sender of a delivery; every other state comes after them.
const (
	stageQueued    = "queued"
	stageResent    = "resent"
	stageBroadcast = "broadcast"
)

// seq orders rows of one node recorded within the same millisecond.
var seq atomic.Uint32

// row builds the log row of one state of a node. States after the send are recorded at least one
// millisecond after it: stores order a node's states by (recordedAt ms, seq), and seq counters of
// different hosts (or a handler quicker than the sender's own bookkeeping) must never put a
// later state before the queued one.
func (e *Engine) row(env *envelope, status, stage string, at time.Time) logstore.Row {
	if stage != stageQueued && stage != stageResent && stage != stageBroadcast {
		if floor := env.SentAt.Truncate(time.Millisecond).Add(time.Millisecond); at.Before(floor) {
			at = floor
		}
	}
	return logstore.Row{
		ID: NewID("st_"), Kind: logstore.KindEvent, FullName: env.Listener, Sender: env.Sender, EventType: env.EventType,
		EventID: env.EventID,
		Status:  status, Stage: stage, RequestID: env.RequestID, NodeID: env.NodeID, ParentNodeID: env.ParentNodeID,
		Attempt: env.Attempt, CreatedAt: env.CreatedAt, RecordedAt: at, Seq: seq.Add(1), Kwargs: env.Kwargs,
		Host: e.Label(),
	}
}

// finished fills what a row of a finished run carries.
func finished(r *logstore.Row, start, end time.Time, res jsvm.Result, err error) {
	r.StartTime, r.EndTime, r.Duration = start, end, end.Sub(start).Milliseconds()
	if len(res.Logs) > 0 {
		r.Logs, _ = json.Marshal(res.Logs)
	}
	switch {
	case err != nil:
		je := jsvm.AsError(err)
		r.Error = &logstore.RowError{Code: je.Code, Message: je.Message, Stack: je.Stack}
	case res.Failed != nil:
		r.Error = &logstore.RowError{Code: "failed", Message: *res.Failed}
	default:
		if b, merr := json.Marshal(res.Value); merr == nil {
			r.Result = b
		}
	}
}

// writeRows hands rows to the log; the log writer spools them durably, so a failure here is a
// full or broken spool, which the host reports in its health.
func (e *Engine) writeRows(ctx context.Context, rows ...logstore.Row) {
	if len(rows) == 0 {
		return
	}
	if err := e.opts.Log.Write(ctx, rows...); err != nil {
		fmt.Fprintf(os.Stderr, "trellis: engine: write %d log rows: %v\n", len(rows), err)
	}
}

// Label names this host in log rows: the machine and this process ("machine/instance").
func (e *Engine) Label() string { return e.opts.HostName + "/" + e.opts.InstanceID }
