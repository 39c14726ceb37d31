package engine_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/internal/parttest"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

// controlTopic is the engine's control log (control.go).
const controlTopic = "control:ops"

// trimmer is what both buses offer tests: drop now what every group acknowledged.
type trimmer interface {
	Trim(ctx context.Context, topic string) (int64, error)
}

// controlRecords reads every record on the control log, by operation, as a starting host would
// (a group of its own from the oldest record, up to a marker published for the purpose; the
// group is deleted after). The bus first trims what every group acknowledged.
func controlRecords(t *testing.T, b bus.Bus) map[string][]map[string]any {
	t.Helper()
	ctx := context.Background()
	_, err := b.(trimmer).Trim(ctx, controlTopic)
	require.NoError(t, err)
	group := vocab.NewID("peek_")
	sub, err := b.Subscribe(ctx, controlTopic, group, bus.SubscribeOptions{Consumer: group, Start: bus.StartOldest, Prefetch: 4096, ClaimAfter: -1})
	require.NoError(t, err)
	defer func() {
		_ = sub.Close()
		_ = b.DeleteGroup(ctx, controlTopic, group)
	}()
	mark := vocab.NewID("peekmark_")
	_, err = b.Publish(ctx, controlTopic, &bus.Message{Payload: []byte(`{"op": "mark", "mark": "` + mark + `", "at": "` + time.Now().Format(time.RFC3339Nano) + `"}`)})
	require.NoError(t, err)
	out := map[string][]map[string]any{}
	timeout := time.After(parttest.WaitLimit)
	for {
		select {
		case d := <-sub.Deliveries():
			var rec map[string]any
			require.NoError(t, json.Unmarshal(d.Message().Payload, &rec))
			_ = d.Ack(ctx)
			if rec["mark"] == mark {
				return out
			}
			op, _ := rec["op"].(string)
			out[op] = append(out[op], rec)
		case <-timeout:
			t.Fatal("the control log did not bring the marker back")
		}
	}
}

// TestControlLogCompaction: records older than the horizon leave the control log once a
// snapshot taken after them is on it; a host starting after that still knows a paused request
// is paused — it takes over the held delivery of a host that stopped and keeps holding it until
// the request is resumed. On the embedded bus and on Redis.
func TestControlLogCompaction(t *testing.T) {
	t.Parallel()
	for _, onRedis := range []bool{false, true} {
		t.Run(map[bool]string{false: "embedded", true: "redis"}[onRedis], func(t *testing.T) {
			t.Parallel()
			opts := []func(*engine.Options){func(o *engine.Options) {
				o.ControlHorizon, o.ClaimAfter = 300*time.Millisecond, 900*time.Millisecond
			}}
			var theBus bus.Bus
			if onRedis {
				rb := redisBus(t)
				theBus = rb
				opts = append(opts, func(o *engine.Options) { o.Bus = rb })
			}
			b := setup(t, opsApp, opts...)
			if theBus == nil {
				theBus = b.bus
			}
			ctx := b.ctx
			// A host that died without deleting its group: it would hold every record for ever.
			dead, err := theBus.Subscribe(ctx, controlTopic, "host:inst_dead", bus.SubscribeOptions{Consumer: "inst_dead", Start: bus.StartOldest, ClaimAfter: -1})
			require.NoError(t, err)
			require.NoError(t, dead.Close())

			// Twenty changes of a running request, and a paused one whose node is held.
			busy := b.send("held", map[string]any{})
			b.probe.AwaitHit(t, busy.NodeIDs[0])
			b.awaitStage(busy.NodeIDs[0], logstore.StageRunning, 1)
			for i := 0; i < 10; i++ {
				_, err := b.eng.PauseRequest(ctx, busy.RequestID)
				require.NoError(t, err)
				_, err = b.eng.ResumeRequest(ctx, busy.RequestID)
				require.NoError(t, err)
			}
			paused := b.send("flaky", map[string]any{})
			node := paused.NodeIDs[0]
			b.awaitStage(node, logstore.StageRetryScheduled, 1)
			_, err = b.eng.PauseRequest(ctx, paused.RequestID)
			require.NoError(t, err)
			b.awaitStage(node, logstore.StagePaused, 0)
			require.NotEmpty(t, controlRecords(t, theBus)["resumeRequest"])

			// Compacted: no change record is left, the snapshot says what is paused.
			var recs map[string][]map[string]any
			require.Eventually(t, func() bool {
				recs = controlRecords(t, theBus)
				return len(recs["pauseRequest"])+len(recs["resumeRequest"]) == 0 && len(recs["snapshot"]) > 0
			}, parttest.WaitLimit, 100*time.Millisecond, "the control log is compacted")
			lag, err := theBus.Lag(ctx, controlTopic)
			require.NoError(t, err)
			for _, g := range lag {
				require.NotEqual(t, "host:inst_dead", g.Group, "the dead host's group was dropped")
			}
			state := recs["snapshot"][len(recs["snapshot"])-1]["state"].(map[string]any)
			requests := state["requests"].(map[string]any)
			require.Equal(t, true, requests[paused.RequestID].(map[string]any)["paused"])
			require.NotContains(t, requests[busy.RequestID], "paused", "the resumed request is kept, not paused")

			// A host that starts now takes over the held node of the host that stops, and holds it.
			other := b.newEngine(vocab.NewID("inst_"), opts...)
			stopCtx, cancel := context.WithTimeout(ctx, parttest.WaitLimit)
			defer cancel()
			require.NoError(t, b.eng.Stop(stopCtx))
			time.Sleep(2*900*time.Millisecond + holdFor) // past the claim timeout: the other host holds it now
			require.Equal(t, logstore.StagePaused, latest(b, node).Stage, "still paused on the host that started after the compaction")
			r, err := other.ResumeRequest(ctx, paused.RequestID)
			require.NoError(t, err, "the new host knows the request is paused")
			require.Equal(t, []string{node}, r.Nodes)
			b.awaitStage(node, logstore.StageDone, 2)
		})
	}
}
