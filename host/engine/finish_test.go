package engine_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/lifecycle"
	"github.com/trellis-run/trellis/host/requests/localtracker"
	"github.com/trellis-run/trellis/logstore"
)

// finishApp is opsApp's listeners, a callback listener and a retrying one, with signals on.
func finishApp() map[string]string {
	app := map[string]string{
		"app.json":             `{"name": "enginetest", "signals": {"enabled": true}}`,
		"events/Wait/e.json":   `{"title": "Wait", "type": "events.NormalType", "sender": "wait", "timeout": "20s", "retry": {"policy": "none"}}`,
		"events/Wait/index.js": `exports.handle = function (event, ctx) { ctx.waitCallback(); return "accepted"; };`,
		"events/Doomed/e.json": `{"title": "Doomed", "type": "events.NormalType", "sender": "doomed",
			"retry": {"policy": "default", "interval": "50ms", "maxAttempts": 3}}`,
		"events/Doomed/index.js": `exports.handle = function () { throw new Error("never"); };`,
	}
	for k, v := range opsApp {
		app[k] = v
	}
	return app
}

// finishBundle is an engine with signals kept in sigs and an embedded request tracker.
func finishBundle(t *testing.T, sigs *signalLog) *bundle {
	tr, err := localtracker.Open(filepath.Join(t.TempDir(), "requests.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	return setup(t, finishApp(), func(o *engine.Options) { o.Signals, o.Requests = sigs, tr })
}

// finishes is the pipeline_finish signals of a request.
func finishes(sigs *signalLog, requestID string) []lifecycle.Signal {
	var out []lifecycle.Signal
	for _, s := range sigs.of(requestID) {
		if s.Type == lifecycle.PipelineFinish {
			out = append(out, s)
		}
	}
	return out
}

// awaitFinishes waits until the request has n pipeline_finish signals, then a moment more, and
// checks there are exactly n, the last one naming node.
func awaitFinishes(t *testing.T, sigs *signalLog, requestID string, n int, node string) {
	t.Helper()
	require.Eventually(t, func() bool { return len(finishes(sigs, requestID)) >= n }, 10*time.Second, 5*time.Millisecond, "%d pipeline_finish of %s", n, requestID)
	time.Sleep(100 * time.Millisecond)
	got := finishes(sigs, requestID)
	require.Len(t, got, n)
	require.Equal(t, map[string]any{"root_pipeline_id": requestID, "node_id": node}, got[n-1].Data)
}

// A node failing with retries finishes its request at its final failure only; a resend of the
// dead letter makes the request unfinished again, and it finishes once more.
func TestPipelineFinishAfterTheLastRetry(t *testing.T) {
	t.Parallel()
	sigs := &signalLog{}
	b := finishBundle(t, sigs)
	res := b.send("doomed", map[string]any{})
	node := res.NodeIDs[0]
	b.awaitStage(node, logstore.StageRetryScheduled, 2)
	require.Empty(t, finishes(sigs, res.RequestID), "a node waiting for its retry keeps its request running")
	b.awaitStage(node, logstore.StageDeadLettered, 3)
	awaitFinishes(t, sigs, res.RequestID, 1, node)
	types := types(sigs.of(res.RequestID))
	require.Equal(t, "pipeline_finish", types[len(types)-1], "after the node's last moment")

	_, err := b.eng.Resend(b.ctx, node)
	require.NoError(t, err)
	b.awaitStage(node, logstore.StageDeadLettered, 4) // the policy's attempts are spent: one try
	awaitFinishes(t, sigs, res.RequestID, 2, node)
}

// A paused request does not finish until it is resumed and its nodes end.
func TestPipelineFinishWaitsForAPausedRequest(t *testing.T) {
	t.Parallel()
	sigs := &signalLog{}
	b := finishBundle(t, sigs)
	res := b.send("flaky", map[string]any{})
	node := res.NodeIDs[0]
	b.awaitStage(node, logstore.StageRetryScheduled, 1)
	_, err := b.eng.PauseRequest(b.ctx, res.RequestID)
	require.NoError(t, err)
	time.Sleep(holdFor)
	require.Empty(t, finishes(sigs, res.RequestID), "a paused request is not finished")
	_, err = b.eng.ResumeRequest(b.ctx, res.RequestID)
	require.NoError(t, err)
	b.awaitStage(node, logstore.StageDone, 2)
	awaitFinishes(t, sigs, res.RequestID, 1, node)
}

// Revoking a request ends its waiting nodes, and finishes it; a handler running at the revoke
// finishes it when it ends.
func TestPipelineFinishOnRevoke(t *testing.T) {
	t.Parallel()
	sigs := &signalLog{}
	b := finishBundle(t, sigs)
	res := b.send("flaky", map[string]any{})
	node := res.NodeIDs[0]
	b.awaitStage(node, logstore.StageRetryScheduled, 1)
	_, err := b.eng.RevokeRequest(b.ctx, res.RequestID)
	require.NoError(t, err)
	awaitFinishes(t, sigs, res.RequestID, 1, node)

	// A running parent and a child it sends: the revoke ends the child when a host takes it,
	// the parent when its handler returns.
	res = b.send("held", map[string]any{})
	parent := res.NodeIDs[0]
	b.probe.AwaitHit(t, parent)
	b.awaitStage(parent, logstore.StageRunning, 1)
	_, err = b.eng.RevokeRequest(b.ctx, res.RequestID)
	require.NoError(t, err)
	sent, err := b.eng.SendEvent(b.ctx, engine.SendRequest{Sender: "child", Kwargs: map[string]any{}, RequestID: res.RequestID, ParentNodeID: parent})
	require.NoError(t, err)
	b.awaitStage(sent.NodeIDs[0], logstore.StageRevoked, 0)
	time.Sleep(100 * time.Millisecond)
	require.Empty(t, finishes(sigs, res.RequestID), "the parent still runs")
	b.probe.Open(parent)
	b.awaitStage(parent, logstore.StageDone, 1)
	awaitFinishes(t, sigs, res.RequestID, 1, parent)
}

// A node waiting for its callback keeps its request running; the callback finishes it.
func TestPipelineFinishOnCallback(t *testing.T) {
	t.Parallel()
	sigs := &signalLog{}
	b := finishBundle(t, sigs)
	res := b.send("wait", map[string]any{})
	node := res.NodeIDs[0]
	b.awaitStage(node, logstore.StageAwaitingCallback, 1)
	time.Sleep(100 * time.Millisecond)
	require.Empty(t, finishes(sigs, res.RequestID))
	_, err := b.eng.Callback(b.ctx, node, map[string]any{"ok": true})
	require.NoError(t, err)
	awaitFinishes(t, sigs, res.RequestID, 1, node)
}

// Skip and forcedFail end nodes, and finish their requests.
func TestPipelineFinishOnSkipAndForcedFail(t *testing.T) {
	t.Parallel()
	sigs := &signalLog{}
	b := finishBundle(t, sigs)
	a := b.send("flaky", map[string]any{})
	c := b.send("flaky", map[string]any{})
	b.awaitStage(a.NodeIDs[0], logstore.StageRetryScheduled, 1)
	b.awaitStage(c.NodeIDs[0], logstore.StageRetryScheduled, 1)
	_, err := b.eng.SkipNode(b.ctx, a.NodeIDs[0])
	require.NoError(t, err)
	_, err = b.eng.ForcedFailNode(b.ctx, c.NodeIDs[0], "")
	require.NoError(t, err)
	awaitFinishes(t, sigs, a.RequestID, 1, a.NodeIDs[0])
	awaitFinishes(t, sigs, c.RequestID, 1, c.NodeIDs[0])
}

// Without signals on, nothing is tracked and no pipeline_finish is emitted.
func TestPipelineFinishNeedsSignals(t *testing.T) {
	t.Parallel()
	sigs := &signalLog{}
	tr, err := localtracker.Open(filepath.Join(t.TempDir(), "requests.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	b := setup(t, opsApp, func(o *engine.Options) { o.Signals, o.Requests = sigs, tr })
	res := b.send("child", map[string]any{})
	b.awaitStage(res.NodeIDs[0], logstore.StageDone, 1)
	time.Sleep(100 * time.Millisecond)
	require.Empty(t, finishes(sigs, res.RequestID))
}
