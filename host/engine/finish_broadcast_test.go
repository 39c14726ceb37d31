package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/internal/parttest"
	"github.com/trellis-run/trellis/host/requests"
	"github.com/trellis-run/trellis/host/requests/localtracker"
	"github.com/trellis-run/trellis/host/requests/redistracker"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

// trackerFor is a request tracker on the embedded file of one test, or on the test Redis.
func trackerFor(t *testing.T, onRedis bool) requests.Tracker {
	t.Helper()
	if !onRedis {
		tr, err := localtracker.Open(filepath.Join(t.TempDir(), "requests.db"))
		require.NoError(t, err)
		t.Cleanup(func() { _ = tr.Close() })
		return tr
	}
	opts, err := redis.ParseURL(os.Getenv("TRELLIS_TEST_REDIS"))
	require.NoError(t, err)
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return redistracker.New(c, "trellis:enginefinish:"+vocab.NewID("")+":")
}

// childrenIn waits until n children of parent in request have a row of stage, and names them.
func childrenIn(t *testing.T, b *bundle, request, parent, stage string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(parttest.WaitLimit)
	for {
		require.NoError(t, b.log.Writer.Flush(b.ctx))
		rows, err := b.log.Store.ByRequest(b.ctx, request)
		require.NoError(t, err)
		var out []string
		for _, r := range rows {
			if r.ParentNodeID == parent && r.Stage == stage && !slices.Contains(out, r.NodeID) {
				out = append(out, r.NodeID)
			}
		}
		if len(out) >= n {
			sort.Strings(out)
			return out
		}
		require.True(t, time.Now().Before(deadline), "children of %s in %s: %v", parent, stage, out)
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPipelineFinishWaitsForBroadcastReceivers: a broadcast received by two hosts finishes its
// request once, after the second receiver's run ends — not at the send, not after the first.
// On the embedded bus and on Redis.
func TestPipelineFinishWaitsForBroadcastReceivers(t *testing.T) {
	t.Parallel()
	busCases(t, func(t *testing.T, opts []func(*engine.Options)) {
		onRedis := len(opts) > 0
		app := finishApp()
		app["events/Cast/e.json"] = `{"title": "Cast", "type": "events.NormalType", "sender": "cast", "handlerType": "broadcast",
			"broadcastIdentifier": "instance", "reliableDelivery": false, "timeout": "20s", "retry": {"policy": "none"}}`
		app["events/Cast/index.js"] = `exports.handle = function (event) { app.getElement("services.Probe").gate(event.nodeId); return "cast ran"; };`
		sigs := &signalLog{}
		tr := trackerFor(t, onRedis)
		opts = append(opts, func(o *engine.Options) { o.Signals, o.Requests = sigs, tr })
		b := setup(t, app, opts...)
		b.newEngine(vocab.NewID("inst_"), opts...)

		res := b.send("cast", map[string]any{})
		cast := res.NodeIDs[0]
		receivers := childrenIn(t, b, res.RequestID, cast, logstore.StageRunning, 2) // each held at the probe
		require.Empty(t, finishes(sigs, res.RequestID), "the broadcast's own node ended at its send; its receivers run")
		b.probe.Open(receivers[0])
		b.awaitStage(receivers[0], logstore.StageDone, 1)
		time.Sleep(200 * time.Millisecond)
		require.Empty(t, finishes(sigs, res.RequestID), "one receiver still runs")
		b.probe.Open(receivers[1])
		b.awaitStage(receivers[1], logstore.StageDone, 1)
		awaitFinishes(t, sigs, res.RequestID, 1, receivers[1])
	})
}

// A non-reliable broadcast receiver that was counted for a request (alive at the send) and then
// skipped the delivery — it was down when it came, and came back with the same identity — closes
// its child node as it skips it, so the request finishes rather than wait a week for it.
func TestPipelineFinishOfASkippedBroadcastReceiver(t *testing.T) {
	t.Parallel()
	app := finishApp()
	app["events/Cast/e.json"] = `{"title": "Cast", "type": "events.NormalType", "sender": "cast", "handlerType": "broadcast",
		"broadcastIdentifier": "host", "reliableDelivery": false, "retry": {"policy": "none"}}`
	app["events/Cast/index.js"] = `exports.handle = function () { return "cast ran"; };`
	sigs := &signalLog{}
	tr := trackerFor(t, false)
	opts := []func(*engine.Options){func(o *engine.Options) { o.Signals, o.Requests = sigs, tr }}
	b := setup(t, app, opts...)
	// The receiver stops, its alive record still fresh: the send counts it.
	ctx, cancel := context.WithTimeout(context.Background(), parttest.WaitLimit)
	defer cancel()
	require.NoError(t, b.eng.Stop(ctx))
	sender := b.newEngine(vocab.NewID("inst_"), append(opts, func(o *engine.Options) { o.HostName = "othermachine" })...)
	res, err := sender.SendEvent(b.ctx, engine.SendRequest{Sender: "cast", Kwargs: map[string]any{}})
	require.NoError(t, err)
	// It comes back as the same receiver (identifier host): its group skips the delivery.
	b.newEngine(vocab.NewID("inst_"), opts...)
	require.Eventually(t, func() bool { return len(finishes(sigs, res.RequestID)) == 1 }, 10*time.Second, 5*time.Millisecond,
		"the skipped receiver's node is closed and the request finishes")
}
