package engine_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/execlog"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

// resendApp has a listener that always fails, one that always works, a disabled one and a
// broadcast one.
func resendApp() map[string]string {
	app := map[string]string{
		"events/Doomed/e.json":   `{"title": "Doomed", "type": "events.NormalType", "sender": "s", "retry": {"policy": "none"}}`,
		"events/Doomed/index.js": `exports.handle = function (event, ctx) { ctx.fail("never works (" + event.kwargs.n + ")"); };`,
	}
	echo(app, "Good", "s", "")
	echo(app, "Off", "s", `"enabled": false, `)
	echo(app, "Every", "b", `"handlerType": "broadcast", "broadcastIdentifier": "host", `)
	return app
}

// TestResendRunsTheNodeAgain: a finished node — a dead letter or a success — runs again as its
// next attempt: same node, event id, request, kwargs and creation time.
func TestResendRunsTheNodeAgain(t *testing.T) {
	t.Parallel()
	b := setup(t, resendApp())
	res := b.send("s", map[string]any{"n": int64(1)})
	doomed, good := nodeOf(t, res, "events.Doomed"), nodeOf(t, res, "events.Good")
	first := b.awaitStage(doomed, logstore.StageDeadLettered, 1)
	require.Equal(t, "never works (1)", first[len(first)-1].Error.Message)

	again, err := b.eng.Resend(b.ctx, doomed)
	require.NoError(t, err)
	require.Equal(t, engine.ResendResult{NodeID: doomed, Attempt: 2}, again)
	rows := b.awaitStage(doomed, logstore.StageDeadLettered, 2)
	require.Equal(t, []string{"waiting/queued@1", "running/running@1", "fail/deadLettered@1",
		"waiting/resent@2", "running/running@2", "fail/deadLettered@2"}, stages(rows))
	for _, r := range rows {
		require.Equal(t, res.EventID, r.EventID)
		require.Equal(t, res.RequestID, r.RequestID)
		require.Equal(t, rows[0].CreatedAt, r.CreatedAt)
		require.JSONEq(t, `{"n": 1}`, string(r.Kwargs))
		require.Equal(t, "events.Doomed", r.FullName)
	}

	b.awaitStage(good, logstore.StageDone, 1)
	again, err = b.eng.Resend(b.ctx, good)
	require.NoError(t, err, "a success can be resent too")
	require.Equal(t, 2, again.Attempt)
	rows = b.awaitStage(good, logstore.StageDone, 2)
	require.Equal(t, []string{"waiting/queued@1", "running/running@1", "success/done@1",
		"waiting/resent@2", "running/running@2", "success/done@2"}, stages(rows))
}

// TestResendRefusals: a node that cannot be resent is refused with the code that says why.
func TestResendRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t, resendApp())
	now := time.Now()
	row := func(kind, fullName, node, status, stage string) logstore.Row {
		return b.rec.Row(execlog.Node{Kind: kind, FullName: fullName, Sender: "s", EventType: engine.DefaultEventType,
			EventID: vocab.NewID("evt_"), RequestID: vocab.NewID("req_"), NodeID: node, CreatedAt: now, Kwargs: []byte(`{}`)},
			status, stage, now)
	}
	cases := []struct {
		name string
		row  *logstore.Row // recorded before the resend; nil: the node is unknown
		node string
		code string
		msg  string
	}{
		{name: "unknown node", node: "node_unknown", code: vocab.CodeNotFound, msg: `no node "node_unknown"`},
		{name: "still queued", node: "node_queued", code: vocab.CodeConflict, msg: "is waiting/queued; resend it once it has finished",
			row: ptr(row(logstore.KindEvent, "events.Good", "node_queued", logstore.StatusWaiting, logstore.StageQueued))},
		{name: "awaiting its callback", node: "node_awaiting", code: vocab.CodeConflict, msg: "is running/awaitingCallback",
			row: ptr(row(logstore.KindEvent, "events.Good", "node_awaiting", logstore.StatusRunning, logstore.StageAwaitingCallback))},
		{name: "a task run", node: "task_x", code: vocab.CodeConflict, msg: "is a task run, not an event delivery",
			row: ptr(row(logstore.KindTask, "tasks.Nightly", "task_x", logstore.StatusFail, logstore.StageFailed))},
		{name: "listener gone", node: "node_gone", code: vocab.CodeNotFound, msg: "listener events.Gone of node node_gone is gone or disabled",
			row: ptr(row(logstore.KindEvent, "events.Gone", "node_gone", logstore.StatusFail, logstore.StageDeadLettered))},
		{name: "listener disabled", node: "node_off", code: vocab.CodeNotFound, msg: "listener events.Off of node node_off is gone or disabled",
			row: ptr(row(logstore.KindEvent, "events.Off", "node_off", logstore.StatusFail, logstore.StageDeadLettered))},
		{name: "broadcast node naming no receiver", node: "node_bcast", code: vocab.CodeConflict, msg: "names no receiver",
			row: ptr(row(logstore.KindEvent, "events.Every", "node_bcast", logstore.StatusFail, logstore.StageDeadLettered))},
		{name: "broadcast receiver without a queue", node: "node_bcast.deadbeef", code: vocab.CodeConflict, msg: "no longer has a queue",
			row: ptr(row(logstore.KindEvent, "events.Every", "node_bcast.deadbeef", logstore.StatusFail, logstore.StageDeadLettered))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.row != nil {
				b.put(*tc.row)
			}
			_, err := b.eng.Resend(b.ctx, tc.node)
			require.Error(t, err)
			require.Equal(t, tc.code, vocab.CodeOf(err), "%v", err)
			require.ErrorContains(t, err, tc.msg)
		})
	}
	require.Zero(t, b.eng.Stats().Sent, "nothing was sent")
}

func ptr[T any](v T) *T { return &v }

// TestBulkResend: every node a log query matches (the failed ones by default) is resent; those
// that cannot be are listed with the reason.
func TestBulkResend(t *testing.T) {
	t.Parallel()
	b := setup(t, resendApp())
	var doomed, good []string
	for n := range 3 {
		res := b.send("s", map[string]any{"n": int64(n)})
		doomed = append(doomed, nodeOf(t, res, "events.Doomed"))
		good = append(good, nodeOf(t, res, "events.Good"))
	}
	for i := range doomed {
		b.awaitStage(doomed[i], logstore.StageDeadLettered, 1)
		b.awaitStage(good[i], logstore.StageDone, 1)
	}
	now := time.Now()
	b.put(b.rec.Row(execlog.Node{Kind: logstore.KindEvent, FullName: "events.Gone", Sender: "s", EventID: "evt_gone",
		RequestID: "req_gone", NodeID: "node_gone", CreatedAt: now, Kwargs: []byte(`{}`)}, logstore.StatusFail, logstore.StageDeadLettered, now))
	b.put(b.rec.Row(execlog.Node{Kind: logstore.KindEvent, FullName: "events.Good", Sender: "s", EventID: "evt_wait",
		RequestID: "req_wait", NodeID: "node_waiting", CreatedAt: now, Kwargs: []byte(`{}`)}, logstore.StatusWaiting, logstore.StageQueued, now))

	// The default query: every failed node.
	res, err := b.eng.BulkResend(b.ctx, logstore.Query{})
	require.NoError(t, err)
	require.False(t, res.Truncated)
	require.Len(t, res.Resent, 3)
	for _, r := range res.Resent {
		require.Contains(t, doomed, r.NodeID)
		require.Equal(t, 2, r.Attempt)
	}
	require.Len(t, res.Skipped, 1)
	require.Equal(t, "node_gone", res.Skipped[0].NodeID)
	require.Contains(t, res.Skipped[0].Reason, "is gone or disabled")
	for _, n := range doomed {
		b.awaitStage(n, logstore.StageDeadLettered, 2)
	}

	// A node still waiting is skipped, saying so.
	res, err = b.eng.BulkResend(b.ctx, logstore.Query{Status: logstore.StatusWaiting})
	require.NoError(t, err)
	require.Empty(t, res.Resent)
	require.Equal(t, []engine.BulkResendSkip{{NodeID: "node_waiting",
		Reason: "engine: not allowed in the node's current state: node node_waiting is waiting/queued; resend it once it has finished"}}, res.Skipped)

	// Any status, by listener.
	res, err = b.eng.BulkResend(b.ctx, logstore.Query{FullName: "events.Good", Status: logstore.StatusSuccess})
	require.NoError(t, err)
	require.Len(t, res.Resent, 3)
	require.Empty(t, res.Skipped)
	for _, n := range good {
		b.awaitStage(n, logstore.StageDone, 2)
	}

	// Nothing matched is an empty answer, not null.
	res, err = b.eng.BulkResend(b.ctx, logstore.Query{FullName: "events.Nobody"})
	require.NoError(t, err)
	require.Equal(t, engine.BulkResendResult{Resent: []engine.ResendResult{}, Skipped: []engine.BulkResendSkip{}}, res)

	_, err = b.eng.BulkResend(b.ctx, logstore.Query{Status: "done"})
	require.ErrorIs(t, err, logstore.ErrInvalidQuery)
}

// TestBulkResendStopsWhenTheBusIsDown: a bus that refuses is the whole call's error, not a skip
// per node.
func TestBulkResendStopsWhenTheBusIsDown(t *testing.T) {
	t.Parallel()
	b := setup(t, resendApp())
	res := b.send("s", map[string]any{"n": int64(1)})
	b.awaitStage(nodeOf(t, res, "events.Doomed"), logstore.StageDeadLettered, 1)
	require.NoError(t, b.bus.Close())
	out, err := b.eng.BulkResend(b.ctx, logstore.Query{})
	require.ErrorIs(t, err, engine.ErrUnavailable)
	require.Empty(t, out.Resent)
	require.Empty(t, out.Skipped)
}
