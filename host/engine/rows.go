package engine

import (
	"context"
	"time"

	"github.com/trellis-run/trellis/host/execlog"
	"github.com/trellis-run/trellis/logstore"
)

// row builds the log row of one state of a node. States after the send are recorded at least one
// millisecond after it: stores order a node's states by (recordedAt ms, seq), and seq counters of
// different hosts (or a handler quicker than the sender's own bookkeeping) must never put a
// later state before the queued one.
func (e *Engine) row(env *envelope, status, stage string, at time.Time) logstore.Row {
	if stage != logstore.StageQueued && stage != logstore.StageResent && stage != logstore.StageBroadcast {
		if floor := env.SentAt.Truncate(time.Millisecond).Add(time.Millisecond); at.Before(floor) {
			at = floor
		}
	}
	return e.opts.Log.Row(execlog.Node{
		Kind: logstore.KindEvent, FullName: env.Listener, Sender: env.Sender, EventType: env.EventType,
		EventID: env.EventID, RequestID: env.RequestID, NodeID: env.NodeID, ParentNodeID: env.ParentNodeID,
		Attempt: env.Attempt, CreatedAt: env.CreatedAt, Kwargs: env.Kwargs,
	}, status, stage, at)
}

// writeRows hands rows to the log (execlog.Recorder.Write says what a failure means).
func (e *Engine) writeRows(ctx context.Context, rows ...logstore.Row) { e.opts.Log.Write(ctx, rows...) }

// Label names this host in log rows: the machine and this process ("machine/instance").
func (e *Engine) Label() string { return e.opts.Log.Host() }
