package engine_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/internal/parttest"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

// busCases runs f on the embedded bus and on Redis (skipped without TRELLIS_TEST_REDIS); opts
// put the engines of the case on its bus.
func busCases(t *testing.T, f func(t *testing.T, opts []func(*engine.Options))) {
	for _, onRedis := range []bool{false, true} {
		t.Run(map[bool]string{false: "embedded", true: "redis"}[onRedis], func(t *testing.T) {
			t.Parallel()
			var opts []func(*engine.Options)
			if onRedis {
				rb := redisBus(t)
				opts = append(opts, func(o *engine.Options) { o.Bus = rb })
			}
			f(t, opts)
		})
	}
}

// pausedRequest starts a request on eng whose Held node waits at the probe, pauses the
// request, sends n Child events into it (n held nodes of listener Child), and lets the Held
// node finish.
func pausedRequest(t *testing.T, b *bundle, eng *engine.Engine, n int) (string, []string) {
	t.Helper()
	res, err := eng.SendEvent(b.ctx, engine.SendRequest{Sender: "held", Kwargs: map[string]any{}})
	require.NoError(t, err)
	parent := res.NodeIDs[0]
	b.probe.AwaitHit(t, parent)
	b.awaitStage(parent, logstore.StageRunning, 1)
	_, err = eng.PauseRequest(b.ctx, res.RequestID)
	require.NoError(t, err)
	var children []string
	for i := 0; i < n; i++ {
		sent, err := eng.SendEvent(b.ctx, engine.SendRequest{Sender: "child", Kwargs: map[string]any{"i": int64(i)}, RequestID: res.RequestID, ParentNodeID: parent})
		require.NoError(t, err)
		children = append(children, sent.NodeIDs[0])
	}
	for _, c := range children {
		b.awaitStage(c, logstore.StagePaused, 1)
	}
	b.probe.Open(parent)
	b.awaitStage(parent, logstore.StageDone, 1)
	return res.RequestID, children
}

// ranOnce checks each node ran once: one success/done row, at most one running row.
func ranOnce(t *testing.T, b *bundle, nodes []string) {
	t.Helper()
	for _, n := range nodes {
		b.awaitStage(n, logstore.StageDone, 1)
	}
	time.Sleep(300 * time.Millisecond) // room for a second run to show
	for _, n := range nodes {
		done, running := 0, 0
		for _, r := range b.attempts(n) {
			switch r.Stage {
			case logstore.StageDone:
				done++
			case logstore.StageRunning:
				running++
			}
		}
		require.Equal(t, 1, done, "node %s ran once: %v", n, stages(b.attempts(n)))
		require.LessOrEqual(t, running, 1, "node %s ran once: %v", n, stages(b.attempts(n)))
	}
}

// neverRan checks none of nodes has a running row, and each ends as stage.
func neverRan(t *testing.T, b *bundle, nodes []string, stage string) {
	t.Helper()
	for _, n := range nodes {
		rows := b.attempts(n)
		for _, r := range rows {
			require.NotEqual(t, logstore.StageRunning, r.Stage, "node %s never runs: %v", n, stages(rows))
		}
		require.Equal(t, stage, rows[len(rows)-1].Stage, "node %s: %v", n, stages(rows))
	}
}

// TestPausedRequestDoesNotStallItsListener: a paused request with more waiting nodes than the
// listener's prefetch, held on two hosts, does not stop another request's events on that
// listener from running; resume on either host runs every held node exactly once.
func TestPausedRequestDoesNotStallItsListener(t *testing.T) {
	t.Parallel()
	busCases(t, func(t *testing.T, opts []func(*engine.Options)) {
		opts = append(opts, func(o *engine.Options) { o.Prefetch = 3 })
		b := setup(t, opsApp, opts...)
		eng2 := b.newEngine(vocab.NewID("inst_"), opts...)
		req, held := pausedRequest(t, b, b.eng, 12)
		time.Sleep(holdFor)
		for _, n := range held {
			require.Equal(t, logstore.StagePaused, latest(b, n).Stage, "a paused request's node does not run")
		}
		// Another request's events on the same listener run, on both hosts.
		var others []string
		for i := 0; i < 8; i++ {
			others = append(others, b.send("child", map[string]any{"other": int64(i)}).NodeIDs[0])
		}
		for _, n := range others {
			b.awaitStage(n, logstore.StageDone, 1)
		}
		r, err := eng2.ResumeRequest(b.ctx, req)
		require.NoError(t, err)
		require.ElementsMatch(t, held, r.Nodes)
		ranOnce(t, b, held)
	})
}

// TestHeldNodesRotate: a host that holds as many nodes as its held prefetch still reads the
// held entries behind them: a node of another request, paused and resumed meanwhile, runs
// while the first request stays paused.
func TestHeldNodesRotate(t *testing.T) {
	t.Parallel()
	b := setup(t, opsApp, func(o *engine.Options) { o.Prefetch, o.HeldPrefetch, o.ClaimAfter = 2, 3, 900*time.Millisecond })
	_, first := pausedRequest(t, b, b.eng, 8)
	req, second := pausedRequest(t, b, b.eng, 2)
	_, err := b.eng.ResumeRequest(b.ctx, req)
	require.NoError(t, err)
	ranOnce(t, b, second)
	for _, n := range first {
		require.Equal(t, logstore.StagePaused, latest(b, n).Stage)
	}
}

// TestEndingHeldNodes: skip, forcedFail and revoke end held nodes (held with their request,
// or paused on their own) and they never run, not after a resume either.
func TestEndingHeldNodes(t *testing.T) {
	t.Parallel()
	busCases(t, func(t *testing.T, opts []func(*engine.Options)) {
		opts = append(opts, func(o *engine.Options) { o.Prefetch = 2 })
		b := setup(t, opsApp, opts...)
		eng2 := b.newEngine(vocab.NewID("inst_"), opts...)
		req, held := pausedRequest(t, b, b.eng, 6)
		_, err := eng2.SkipNode(b.ctx, held[0])
		require.NoError(t, err)
		_, err = eng2.ForcedFailNode(b.ctx, held[1], "no")
		require.NoError(t, err)
		r, err := eng2.RevokeRequest(b.ctx, req)
		require.NoError(t, err)
		require.ElementsMatch(t, held[2:], r.Nodes)

		// A node paused on its own, past its retry's time, then skipped; another force-failed.
		skipped := b.send("flaky", map[string]any{}).NodeIDs[0]
		failed := b.send("flaky", map[string]any{}).NodeIDs[0]
		for _, n := range []string{skipped, failed} {
			b.awaitStage(n, logstore.StageRetryScheduled, 1)
			_, err = b.eng.PauseNode(b.ctx, n)
			require.NoError(t, err)
		}
		time.Sleep(holdFor)
		_, err = eng2.SkipNode(b.ctx, skipped)
		require.NoError(t, err)
		_, err = eng2.ForcedFailNode(b.ctx, failed, "")
		require.NoError(t, err)
		time.Sleep(holdFor)

		neverRan(t, b, held[:1], logstore.StageSkipped)
		neverRan(t, b, held[1:2], logstore.StageForcedFail)
		neverRan(t, b, held[2:], logstore.StageRevoked)
		require.Equal(t, "success/skipped@2", stages([]logstore.Row{latest(b, skipped)})[0])
		require.Equal(t, "fail/forcedFail@2", stages([]logstore.Row{latest(b, failed)})[0])
		for _, n := range held[2:] {
			revoked := 0
			for _, r := range b.attempts(n) {
				if r.Stage == logstore.StageRevoked {
					revoked++
				}
			}
			require.Equal(t, 1, revoked, "the revoke recorded %s; no host records it again", n)
		}
	})
}

// TestHeldNodesOutliveTheirHost: a host holding a paused request's nodes stops without a
// resume; after the resume another host runs every one of them, once.
func TestHeldNodesOutliveTheirHost(t *testing.T) {
	t.Parallel()
	busCases(t, func(t *testing.T, opts []func(*engine.Options)) {
		opts = append(opts, func(o *engine.Options) { o.Prefetch, o.ClaimAfter = 2, time.Second })
		b := newBundle(t, opsApp)
		first := b.newEngine(vocab.NewID("inst_"), opts...)
		req, held := pausedRequest(t, b, first, 6)
		b.eng = b.newEngine(b.instance, opts...)
		ctx, cancel := context.WithTimeout(b.ctx, parttest.WaitLimit)
		defer cancel()
		require.NoError(t, first.Stop(ctx))
		_, err := b.eng.ResumeRequest(b.ctx, req)
		require.NoError(t, err)
		ranOnce(t, b, held)
		for _, n := range held {
			require.Contains(t, latest(b, n).Host, b.instance, "the host still running ran it")
		}
	})
}

// TestHostStartingAfterAPauseHoldsTheNode: a node paused while no host consumes (its pause
// recorded by a process that does not, like the CLI) is held by a host that starts later,
// which read the pause back from the control log; it runs after resume.
func TestHostStartingAfterAPauseHoldsTheNode(t *testing.T) {
	t.Parallel()
	busCases(t, func(t *testing.T, opts []func(*engine.Options)) {
		b := newBundle(t, opsApp)
		o := engine.Options{Bus: b.bus, Executor: parttest.NewVM(t, b.probe, b.snap.Load()), Log: b.rec, Store: b.log.Store,
			Snapshot: b.snap.Load, HostName: machine, InstanceID: vocab.NewID("inst_"), LagEvery: -1}
		for _, f := range opts {
			f(&o)
		}
		cli, err := engine.New(o)
		require.NoError(t, err)
		sent, err := cli.SendEvent(b.ctx, engine.SendRequest{Sender: "child", Kwargs: map[string]any{}})
		require.NoError(t, err)
		node := sent.NodeIDs[0]
		b.awaitStage(node, logstore.StageQueued, 1)
		_, err = cli.PauseNode(b.ctx, node)
		require.NoError(t, err)

		b.eng = b.newEngine(b.instance, opts...)
		time.Sleep(holdFor)
		neverRan(t, b, []string{node}, logstore.StagePaused)
		_, err = b.eng.ResumeNode(b.ctx, node)
		require.NoError(t, err)
		ranOnce(t, b, []string{node})
	})
}

// TestHeldBroadcastNodes: each receiver of a broadcast holds its own node of a paused request
// on a held queue of its own; after resume each runs its node once, and no other receiver runs
// it.
func TestHeldBroadcastNodes(t *testing.T) {
	t.Parallel()
	app := map[string]string{}
	for k, v := range opsApp {
		app[k] = v
	}
	app["events/Cast/e.json"] = `{"title": "Cast", "type": "events.NormalType", "sender": "cast", "handlerType": "broadcast",
		"broadcastIdentifier": "instance", "reliableDelivery": false, "retry": {"policy": "none"}}`
	app["events/Cast/index.js"] = `exports.handle = function () { return "cast ran"; };`
	b := setup(t, app, func(o *engine.Options) { o.Prefetch = 1 })
	b.newEngine(vocab.NewID("inst_"), func(o *engine.Options) { o.Prefetch = 1 })
	res := b.send("held", map[string]any{})
	parent := res.NodeIDs[0]
	b.probe.AwaitHit(t, parent)
	b.awaitStage(parent, logstore.StageRunning, 1)
	_, err := b.eng.PauseRequest(b.ctx, res.RequestID)
	require.NoError(t, err)
	var casts []string
	for i := 0; i < 3; i++ {
		sent, err := b.eng.SendEvent(b.ctx, engine.SendRequest{Sender: "cast", Kwargs: map[string]any{"i": int64(i)}, RequestID: res.RequestID, ParentNodeID: parent})
		require.NoError(t, err)
		casts = append(casts, sent.NodeIDs[0])
	}
	b.probe.Open(parent)
	// receivers is each receiver's node of the broadcasts, once all 6 are recorded in stage.
	receivers := func(stage string) []string {
		t.Helper()
		deadline := time.Now().Add(parttest.WaitLimit)
		for {
			require.NoError(t, b.log.Writer.Flush(b.ctx))
			rows, err := b.log.Store.ByRequest(b.ctx, res.RequestID)
			require.NoError(t, err)
			var out []string
			for _, r := range rows {
				if slices.Contains(casts, r.ParentNodeID) && r.Stage == stage {
					out = append(out, r.NodeID)
				}
			}
			if len(out) == 2*len(casts) {
				return out
			}
			require.True(t, time.Now().Before(deadline), "receivers in %s: %v", stage, out)
			time.Sleep(20 * time.Millisecond)
		}
	}
	held := receivers(logstore.StagePaused)
	time.Sleep(holdFor)
	neverRan(t, b, held, logstore.StagePaused)
	_, err = b.eng.ResumeRequest(b.ctx, res.RequestID)
	require.NoError(t, err)
	ranOnce(t, b, held)
}
