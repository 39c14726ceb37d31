package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/execlog"
	"github.com/trellis-run/trellis/host/lifecycle"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

var opsApp = map[string]string{
	// Flaky fails its first try and waits 300 ms for the second, which succeeds: a waiting node.
	"events/Flaky/e.json": `{"title": "Flaky", "type": "events.NormalType", "sender": "flaky", "needRunHook": true,
		"retry": {"policy": "default", "interval": "300ms", "maxAttempts": 3}}`,
	"events/Flaky/index.js": `exports.handle = function (event) { if (event.attempt === 1) { throw new Error("first try"); } return "ok"; };
		exports.pre_pause_node = function (data) { data.kwargs = "ignored"; };
		exports.post_resume_node = function () {};`,
	"events/Dead/e.json":    `{"title": "Dead", "type": "events.NormalType", "sender": "dead", "retry": {"policy": "none"}}`,
	"events/Dead/index.js":  `exports.handle = function (event) { throw new Error("broken " + JSON.stringify(event.kwargs)); };`,
	"events/Child/e.json":   `{"title": "Child", "type": "events.NormalType", "sender": "child", "retry": {"policy": "none"}}`,
	"events/Child/index.js": `exports.handle = function () { return "child ran"; };`,
	"events/Held/e.json":    `{"title": "Held", "type": "events.NormalType", "sender": "held", "timeout": "20s", "retry": {"policy": "none"}}`,
	"events/Held/index.js":  `exports.handle = function (event) { app.getElement("services.Probe").gate(event.nodeId); return "finished"; };`,
}

// holdFor is how long a test watches a held node not run: longer than Flaky's retry interval.
const holdFor = 900 * time.Millisecond

func latest(b *bundle, node string) logstore.Row {
	rows := b.attempts(node)
	return rows[len(rows)-1]
}

// conflictNaming checks err is a conflict naming state.
func conflictNaming(t *testing.T, err error, state string) {
	t.Helper()
	require.ErrorIs(t, err, engine.ErrConflict)
	require.Equal(t, vocab.CodeConflict, vocab.CodeOf(err))
	require.Contains(t, err.Error(), state)
}

// TestNodeOpsStateTable: each node operation is allowed from the states of the table in
// docs/reference.md §5 and refused from the others with a conflict naming the state.
func TestNodeOpsStateTable(t *testing.T) {
	t.Parallel()
	sigs := &signalLog{}
	b := setup(t, opsApp, func(o *engine.Options) { o.Signals = sigs })
	ctx := b.ctx

	_, err := b.eng.PauseNode(ctx, "node_nope")
	require.ErrorIs(t, err, engine.ErrNotFound)

	// A dead letter: retry, skip; not pause, resume, forcedFail.
	res := b.send("dead", map[string]any{"n": int64(1)})
	dead := res.NodeIDs[0]
	b.awaitStage(dead, logstore.StageDeadLettered, 1)
	_, err = b.eng.PauseNode(ctx, dead)
	conflictNaming(t, err, "fail/deadLettered")
	_, err = b.eng.ResumeNode(ctx, dead)
	conflictNaming(t, err, "fail/deadLettered")
	_, err = b.eng.ForcedFailNode(ctx, dead, "")
	conflictNaming(t, err, "fail/deadLettered")

	again, err := b.eng.RetryNode(ctx, dead, map[string]any{"n": int64(2)})
	require.NoError(t, err)
	require.Equal(t, 2, again.Attempt)
	rows := b.awaitStage(dead, logstore.StageDeadLettered, 2)
	require.Contains(t, rows[len(rows)-1].Error.Message, `broken {"n":2}`, "retry runs with the new data")

	skipped, err := b.eng.SkipNode(ctx, dead)
	require.NoError(t, err)
	require.Equal(t, engine.OpResult{NodeID: dead, Status: logstore.StatusSuccess, Stage: logstore.StageSkipped, Attempt: 2}, skipped)
	_, err = b.eng.RetryNode(ctx, dead, nil)
	conflictNaming(t, err, "success/skipped")
	_, err = b.eng.SkipNode(ctx, dead)
	conflictNaming(t, err, "success/skipped")
	require.Equal(t, []string{"pre_retry_node", "post_retry_node", "pre_skip_node", "post_skip_node"},
		opTypes(sigs.of(res.RequestID)))
	retrySig := sigs.of(res.RequestID)
	for _, s := range retrySig {
		if s.Type == "pre_retry_node" {
			require.Equal(t, map[string]any{"node_id": dead, "data": map[string]any{"n": int64(2)}, "root_pipeline_id": res.RequestID, "attempt": int64(1)}, s.Data)
		}
	}

	// A running node: forcedFail only.
	held := b.send("held", map[string]any{}).NodeIDs[0]
	b.probe.AwaitHit(t, held)
	b.awaitStage(held, logstore.StageRunning, 1)
	_, err = b.eng.PauseNode(ctx, held)
	conflictNaming(t, err, "running/running")
	_, err = b.eng.SkipNode(ctx, held)
	conflictNaming(t, err, "running/running")
	_, err = b.eng.RetryNode(ctx, held, nil)
	conflictNaming(t, err, "running/running")
	ff, err := b.eng.ForcedFailNode(ctx, held, "operator said so")
	require.NoError(t, err)
	require.Equal(t, logstore.StageForcedFail, ff.Stage)
	b.probe.AwaitHit(t, "ended:"+held)
	_, err = b.eng.ForcedFailNode(ctx, held, "")
	conflictNaming(t, err, "fail/forcedFail")
	// A force-failed node can be retried, and runs.
	b.probe.Open(held)
	_, err = b.eng.RetryNode(ctx, held, nil)
	require.NoError(t, err)
	b.awaitStage(held, logstore.StageDone, 2)
}

// opTypes is the types of the operations' signals among sigs (the run's own left out).
func opTypes(sigs []lifecycle.Signal) []string {
	out := []string{}
	for _, s := range sigs {
		switch s.Type {
		case lifecycle.NodeEnter, lifecycle.NodeFinish, lifecycle.NodeExecuteFail, lifecycle.NodeExecuteException,
			lifecycle.PrePrepareRunPipeline, lifecycle.PostPrepareRunPipeline:
			continue
		}
		out = append(out, string(s.Type))
	}
	return out
}

// TestPauseAndResumeNode: a paused node waiting for its retry is held past its time and runs
// after resume; hooks and signals fire once each, in order.
func TestPauseAndResumeNode(t *testing.T) {
	t.Parallel()
	sigs := &signalLog{}
	b := setup(t, opsApp, func(o *engine.Options) { o.Signals = sigs })
	res := b.send("flaky", map[string]any{})
	node := res.NodeIDs[0]
	b.awaitStage(node, logstore.StageRetryScheduled, 1)
	p, err := b.eng.PauseNode(b.ctx, node)
	require.NoError(t, err)
	require.Equal(t, engine.OpResult{NodeID: node, Status: logstore.StatusWaiting, Stage: logstore.StagePaused, Attempt: 2}, p)
	_, err = b.eng.PauseNode(b.ctx, node)
	conflictNaming(t, err, "waiting/paused")
	time.Sleep(holdFor)
	require.Equal(t, logstore.StagePaused, latest(b, node).Stage, "a paused node does not run")
	_, err = b.eng.ResumeNode(b.ctx, node)
	require.NoError(t, err)
	rows := b.awaitStage(node, logstore.StageDone, 2)
	require.Equal(t, []string{"waiting/queued@1", "running/running@1", "waiting/retryScheduled@1", "waiting/paused@2", "waiting/queued@2", "running/running@2", "success/done@2"},
		withoutLateRunning(stages(rows)))
	_, err = b.eng.ResumeNode(b.ctx, node)
	conflictNaming(t, err, "success/done")
	require.Equal(t, []string{"pre_pause_node", "post_pause_node", "pre_resume_node", "post_resume_node"}, opTypes(sigs.of(res.RequestID)))
	// The listener's hooks ran, each once, as rows under the node.
	hooks := map[string]int{}
	for _, r := range b.log.Sink.All() {
		if r.Kind == logstore.KindHook && r.ParentNodeID == node {
			hooks[r.EventType]++
		}
	}
	require.Equal(t, map[string]int{"pre_pause_node": 1, "post_resume_node": 1}, hooks)
}

// withoutLateRunning keeps the rows a short run may or may not write on its own out of a
// comparison: the first running row of a try is always there, in order.
func withoutLateRunning(s []string) []string {
	out := []string{}
	for _, x := range s {
		if !strings.HasPrefix(x, "running/running") || !contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// TestRequestPauseResumeRevoke: a paused request's waiting node is held past its time and runs
// after resume; revoke ends a waiting node as revoked and it never runs; each state refuses
// what it does not allow, naming the state; the signals carry the seed's data, in order.
func TestRequestPauseResumeRevoke(t *testing.T) {
	t.Parallel()
	sigs := &signalLog{}
	b := setup(t, opsApp, func(o *engine.Options) { o.Signals = sigs })
	ctx := b.ctx
	_, err := b.eng.PauseRequest(ctx, "req_nope")
	require.ErrorIs(t, err, engine.ErrNotFound)

	res := b.send("flaky", map[string]any{})
	node := res.NodeIDs[0]
	b.awaitStage(node, logstore.StageRetryScheduled, 1)
	_, err = b.eng.ResumeRequest(ctx, res.RequestID)
	conflictNaming(t, err, "running")
	p, err := b.eng.PauseRequest(ctx, res.RequestID)
	require.NoError(t, err)
	require.Equal(t, engine.RequestOpResult{RequestID: res.RequestID, State: "paused", Nodes: []string{node}}, p)
	_, err = b.eng.PauseRequest(ctx, res.RequestID)
	conflictNaming(t, err, "paused")
	time.Sleep(holdFor)
	require.Equal(t, logstore.StagePaused, latest(b, node).Stage, "a paused request's node does not run")
	r, err := b.eng.ResumeRequest(ctx, res.RequestID)
	require.NoError(t, err)
	require.Equal(t, []string{node}, r.Nodes)
	b.awaitStage(node, logstore.StageDone, 2)
	_, err = b.eng.RevokeRequest(ctx, res.RequestID)
	conflictNaming(t, err, "finished")
	sig := sigs.of(res.RequestID)
	require.Equal(t, []string{"pre_pause_pipeline", "post_pause_pipeline", "pre_resume_pipeline", "post_resume_pipeline"}, opTypes(sig))
	var data []map[string]any
	for _, s := range sig {
		if strings.HasSuffix(string(s.Type), "_pipeline") && !strings.Contains(string(s.Type), "prepare") {
			data = append(data, s.Data)
		}
	}
	require.Equal(t, []map[string]any{{"pipeline": res.RequestID}, {"pipeline_id": res.RequestID}, {"pipeline_id": res.RequestID}, {"pipeline_id": res.RequestID}}, data)

	// Revoke.
	res = b.send("flaky", map[string]any{})
	node = res.NodeIDs[0]
	b.awaitStage(node, logstore.StageRetryScheduled, 1)
	v, err := b.eng.RevokeRequest(ctx, res.RequestID)
	require.NoError(t, err)
	require.Equal(t, engine.RequestOpResult{RequestID: res.RequestID, State: "revoked", Nodes: []string{node}}, v)
	time.Sleep(holdFor)
	last := latest(b, node)
	require.Equal(t, "fail/revoked@2", stages([]logstore.Row{last})[0], "a revoked node never runs")
	require.Equal(t, "revoked", last.Error.Code)
	_, err = b.eng.RevokeRequest(ctx, res.RequestID)
	conflictNaming(t, err, "revoked")
	_, err = b.eng.PauseRequest(ctx, res.RequestID)
	conflictNaming(t, err, "revoked")
	_, err = b.eng.RetryNode(ctx, node, nil)
	conflictNaming(t, err, "revoked")
	require.Equal(t, []string{"pre_revoke_pipeline", "post_revoke_pipeline"}, opTypes(sigs.of(res.RequestID)))
}

// TestSkipAWaitingNode: a skipped waiting node ends as success/skipped and never runs.
func TestSkipAWaitingNode(t *testing.T) {
	t.Parallel()
	b := setup(t, opsApp)
	node := b.send("flaky", map[string]any{}).NodeIDs[0]
	b.awaitStage(node, logstore.StageRetryScheduled, 1)
	_, err := b.eng.SkipNode(b.ctx, node)
	require.NoError(t, err)
	time.Sleep(holdFor)
	require.Equal(t, "success/skipped@2", stages([]logstore.Row{latest(b, node)})[0])
}

// TestOpsAcrossHosts: two hosts on one bus (embedded, and Redis); an operation called on the
// host that does not run the node reaches the one that does: forcedFail interrupts its running
// handler, a pause made on one host holds the retry whichever host takes it.
func TestOpsAcrossHosts(t *testing.T) {
	t.Parallel()
	for _, onRedis := range []bool{false, true} {
		t.Run(map[bool]string{false: "embedded", true: "redis"}[onRedis], func(t *testing.T) {
			t.Parallel()
			var opts []func(*engine.Options)
			if onRedis {
				rb := redisBus(t)
				opts = append(opts, func(o *engine.Options) { o.Bus = rb })
			}
			b := setup(t, opsApp, opts...)
			other := vocab.NewID("inst_")
			eng2 := b.newEngine(other, opts...)
			engines := map[string]*engine.Engine{b.instance: b.eng, other: eng2}
			// notOn is the engine of the host that did not write row r.
			notOn := func(r logstore.Row) *engine.Engine {
				for inst, e := range engines {
					if !strings.Contains(r.Host, inst) {
						return e
					}
				}
				t.Fatalf("row host %q", r.Host)
				return nil
			}
			held := b.send("held", map[string]any{}).NodeIDs[0]
			b.probe.AwaitHit(t, held)
			rows := b.awaitStage(held, logstore.StageRunning, 1)
			_, err := notOn(rows[len(rows)-1]).ForcedFailNode(b.ctx, held, "stop it")
			require.NoError(t, err)
			b.probe.AwaitHit(t, "ended:"+held) // the handler on the other host was cancelled
			time.Sleep(200 * time.Millisecond)
			require.Equal(t, "fail/forcedFail@1", stages([]logstore.Row{latest(b, held)})[0])

			node := b.send("flaky", map[string]any{}).NodeIDs[0]
			rows = b.awaitStage(node, logstore.StageRetryScheduled, 1)
			e := notOn(rows[len(rows)-1])
			_, err = e.PauseNode(b.ctx, node)
			require.NoError(t, err)
			time.Sleep(holdFor)
			require.Equal(t, logstore.StagePaused, latest(b, node).Stage)
			_, err = e.ResumeNode(b.ctx, node)
			require.NoError(t, err)
			b.awaitStage(node, logstore.StageDone, 2)
		})
	}
}

// TestPausedRequestHoldsNodesCreatedLater: a node created in a paused request (by a handler
// that was running when the request was paused) is held, recorded as paused, and runs after
// resume; an engine that does not consume (the CLI's) knows the request is paused.
func TestPausedRequestHoldsNodesCreatedLater(t *testing.T) {
	t.Parallel()
	b := setup(t, opsApp)
	res := b.send("held", map[string]any{})
	parent := res.NodeIDs[0]
	b.probe.AwaitHit(t, parent)
	b.awaitStage(parent, logstore.StageRunning, 1)
	p, err := b.eng.PauseRequest(b.ctx, res.RequestID)
	require.NoError(t, err)
	require.Empty(t, p.Nodes, "the running parent is not paused")
	// The running handler sends a child event into its request.
	sent, err := b.eng.SendEvent(b.ctx, engine.SendRequest{Sender: "child", Kwargs: map[string]any{}, RequestID: res.RequestID, ParentNodeID: parent})
	require.NoError(t, err)
	child := sent.NodeIDs[0]
	b.probe.Open(parent)
	b.awaitStage(parent, logstore.StageDone, 1)
	b.awaitStage(child, logstore.StagePaused, 1)
	time.Sleep(holdFor)
	require.Equal(t, logstore.StagePaused, latest(b, child).Stage, "a node created in a paused request does not run")

	cli, err := engine.New(engine.Options{Bus: b.bus, Executor: b.vm(t), Log: b.rec, Store: b.log.Store, Snapshot: b.snap.Load,
		HostName: machine, InstanceID: vocab.NewID("inst_"), LagEvery: -1})
	require.NoError(t, err)
	_, err = cli.PauseRequest(b.ctx, res.RequestID)
	conflictNaming(t, err, "paused")
	r, err := cli.ResumeRequest(b.ctx, res.RequestID)
	require.NoError(t, err)
	require.Equal(t, []string{child}, r.Nodes)
	b.awaitStage(child, logstore.StageDone, 1)
}

// TestEngineRefusesTaskNodes: the engine operates on event nodes only; a task node reaching it
// answers not_implemented, naming its kind. (The host sends task nodes to the task center first:
// host.NodeOp, tested in host/tasks and web.)
func TestEngineRefusesTaskNodes(t *testing.T) {
	t.Parallel()
	b := setup(t, opsApp)
	b.put(b.rec.Row(execlog.Node{Kind: logstore.KindTask, FullName: "tasks.Once", Sender: "tasks.Once", RequestID: "req_task", NodeID: "node_task", Attempt: 1, CreatedAt: time.Now(), Kwargs: []byte(`{}`)},
		logstore.StatusWaiting, logstore.StageScheduled, time.Now()))
	for _, op := range engine.NodeOps {
		_, err := b.eng.NodeOp(b.ctx, op, "node_task", nil)
		require.ErrorIs(t, err, engine.ErrNotBuilt, op)
		require.Equal(t, vocab.CodeNotImplemented, vocab.CodeOf(err))
		require.Contains(t, err.Error(), "task node")
	}
	_, err := b.eng.NodeOp(b.ctx, "pause", "node_task", map[string]any{"x": 1})
	require.ErrorIs(t, err, engine.ErrInvalidEvent, "pause takes no data")
	_, err = b.eng.NodeOp(b.ctx, "explode", "node_task", nil)
	require.ErrorIs(t, err, engine.ErrInvalidEvent)
}
