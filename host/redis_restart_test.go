package host_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/backends"
	"github.com/trellis-run/trellis/host/bus/redisbus/redistest"
	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/logstore"
)

func slowListenerApp() map[string]string {
	return map[string]string{
		"app.json":            fmt.Sprintf(`{"name": "rr%d"}`, time.Now().UnixNano()),
		"events/Job/e.json":   `{"title": "Job", "type": "events.NormalType", "sender": "jobs", "retry": {"policy": "none"}}`,
		"events/Job/index.js": `exports.handle = function (event) { const end = Date.now() + 30; while (Date.now() < end) {} return event.kwargs.n; };`,
	}
}

// A Redis restart in the middle of a stream of events loses none of them: what Redis had
// acknowledged is on disk, consumers resume, and events sent after the restart flow as before.
func TestRedisRestartMidStreamLosesNoEvent(t *testing.T) {
	t.Parallel()
	srv := redistest.Durable(t)
	h := setup(t, host.Config{Sandbox: host.SandboxInProcess, ServeEvents: true, RedisURL: srv.URL(), ClaimAfter: time.Second}, slowListenerApp())
	ctx := context.Background()
	var nodes []string
	send := func(from, to int) {
		for i := from; i < to; i++ {
			res, err := h.SendEvent(ctx, engine.SendRequest{Sender: "jobs", Kwargs: map[string]any{"n": int64(i)}})
			require.NoError(t, err)
			nodes = append(nodes, res.NodeIDs...)
		}
	}
	send(0, 30)
	srv.Kill()
	srv.Start()
	send(30, 60)
	require.Eventually(t, func() bool {
		require.NoError(t, h.LogWriter().Flush(ctx))
		for _, n := range nodes {
			rows, err := h.LogStore().Attempts(ctx, n)
			require.NoError(t, err)
			if len(rows) == 0 || rows[len(rows)-1].Status != logstore.StatusSuccess {
				return false
			}
		}
		return true
	}, 60*time.Second, 100*time.Millisecond, "every event sent before and after the restart is handled")
}

// With Redis down, sendEvent fails at once with a clear error (503 over HTTP), and works again
// when Redis is back: nothing is reported as sent that was not.
func TestSendEventWithRedisDownFailsClearly(t *testing.T) {
	t.Parallel()
	srv := redistest.Durable(t)
	h := setup(t, host.Config{Sandbox: host.SandboxInProcess, RedisURL: srv.URL()}, slowListenerApp())
	ctx := context.Background()
	_, err := h.SendEvent(ctx, engine.SendRequest{Sender: "jobs", Kwargs: map[string]any{}})
	require.NoError(t, err)
	srv.Kill()
	start := time.Now()
	_, err = h.SendEvent(ctx, engine.SendRequest{Sender: "jobs", Kwargs: map[string]any{}})
	require.ErrorIs(t, err, engine.ErrUnavailable)
	require.Less(t, time.Since(start), 15*time.Second, "fails, does not hang")
	srv.Start()
	require.Eventually(t, func() bool {
		_, err := h.SendEvent(ctx, engine.SendRequest{Sender: "jobs", Kwargs: map[string]any{}})
		return err == nil
	}, 30*time.Second, 100*time.Millisecond)
}

// reliableDelivery: false drops what arrives while no host runs the listener, and ends its node
// fail/dropped; a reliable listener keeps it.
func TestUnreliableListenerDropsWhatArrivesWhileNoHostRunsIt(t *testing.T) {
	t.Parallel()
	srv := redistest.Durable(t)
	files := map[string]string{
		"app.json":               fmt.Sprintf(`{"name": "rel%d"}`, time.Now().UnixNano()),
		"events/Lossy/e.json":    `{"title": "Lossy", "type": "events.NormalType", "sender": "s", "reliableDelivery": false}`,
		"events/Lossy/index.js":  `exports.handle = function () { return 1; };`,
		"events/Keeper/e.json":   `{"title": "Keeper", "type": "events.NormalType", "sender": "s"}`,
		"events/Keeper/index.js": `exports.handle = function () { return 1; };`,
	}
	dir := writeApp(t, files)
	ctx := context.Background()
	sender, err := host.New(host.Config{AppDir: dir, Sandbox: host.SandboxInProcess, RedisURL: srv.URL()}, backends.Open)
	require.NoError(t, err)
	require.NoError(t, sender.Start(ctx))
	t.Cleanup(func() { _ = sender.Stop(ctx) })
	early, err := sender.SendEvent(ctx, engine.SendRequest{Sender: "s", Kwargs: map[string]any{}})
	require.NoError(t, err)

	// A host that runs the listeners starts only now, on the same data directory's log.
	server := setup(t, host.Config{AppDir: "", Sandbox: host.SandboxInProcess, ServeEvents: true, RedisURL: srv.URL()}, files)
	late, err := sender.SendEvent(ctx, engine.SendRequest{Sender: "s", Kwargs: map[string]any{}})
	require.NoError(t, err)
	state := func(node string) string {
		require.NoError(t, sender.LogWriter().Flush(ctx))
		require.NoError(t, server.LogWriter().Flush(ctx))
		for _, h := range []*host.Host{server, sender} {
			rows, err := h.LogStore().Attempts(ctx, node)
			require.NoError(t, err)
			for _, r := range rows {
				if r.Status == logstore.StatusSuccess {
					return r.Status
				}
			}
		}
		return "not handled"
	}
	require.Eventually(t, func() bool {
		return state(late.NodeIDs[0]) == logstore.StatusSuccess && state(late.NodeIDs[1]) == logstore.StatusSuccess &&
			state(early.NodeIDs[0]) == logstore.StatusSuccess // Keeper (sorted first) kept the early event
	}, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, "not handled", state(early.NodeIDs[1]), "the lossy listener dropped the event sent while no host ran it")
	// Dropped, and the log says so: the node ends instead of staying queued for ever.
	require.Eventually(t, func() bool {
		require.NoError(t, server.LogWriter().Flush(ctx))
		rows, err := server.LogStore().Attempts(ctx, early.NodeIDs[1])
		require.NoError(t, err)
		last := rows[len(rows)-1]
		return last.Status == logstore.StatusFail && last.Stage == logstore.StageDropped && last.Error != nil && last.Error.Code == logstore.StageDropped
	}, 30*time.Second, 50*time.Millisecond, "the dropped event's node ends fail/dropped")
}

// A scheduled retry survives the host that scheduled it: another host runs it when it is due.
func TestScheduledRetrySurvivesItsHost(t *testing.T) {
	t.Parallel()
	srv := redistest.Durable(t)
	files := map[string]string{
		"app.json": fmt.Sprintf(`{"name": "retry%d"}`, time.Now().UnixNano()),
		"events/Flaky/e.json": `{"title": "Flaky", "type": "events.NormalType", "sender": "s",
			"retry": {"policy": "default", "interval": "1500ms", "maxAttempts": 3}}`,
		"events/Flaky/index.js": `exports.handle = function (event) { if (event.attempt < 2) throw new Error("not yet"); return event.attempt; };`,
	}
	ctx := context.Background()
	first := setup(t, host.Config{Sandbox: host.SandboxInProcess, ServeEvents: true, RedisURL: srv.URL(), ClaimAfter: 500 * time.Millisecond}, files)
	res, err := first.SendEvent(ctx, engine.SendRequest{Sender: "s", Kwargs: map[string]any{}})
	require.NoError(t, err)
	node := res.NodeIDs[0]
	require.Eventually(t, func() bool {
		require.NoError(t, first.LogWriter().Flush(ctx))
		rows, err := first.LogStore().Attempts(ctx, node)
		require.NoError(t, err)
		return len(rows) > 0 && rows[len(rows)-1].Stage == "retryScheduled"
	}, 30*time.Second, 20*time.Millisecond)
	require.NoError(t, first.Stop(ctx))

	second := setup(t, host.Config{Sandbox: host.SandboxInProcess, ServeEvents: true, RedisURL: srv.URL(), ClaimAfter: 500 * time.Millisecond}, files)
	require.Eventually(t, func() bool {
		require.NoError(t, second.LogWriter().Flush(ctx))
		rows, err := second.LogStore().Attempts(ctx, node)
		require.NoError(t, err)
		for _, r := range rows {
			if r.Status == logstore.StatusSuccess && r.Attempt == 2 {
				return true
			}
		}
		return false
	}, 30*time.Second, 50*time.Millisecond, "the second host ran the retry the first one scheduled")
}
