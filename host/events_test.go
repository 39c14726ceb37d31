package host_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/backends"
	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/logstore"
)

// eventApp has a service that sends events and listeners of every handler type and retry style.
var eventApp = map[string]string{
	"app.json":               `{"name": "events"}`,
	"services/Orders/e.json": `{"title": "Orders", "type": "services.NormalType"}`,
	"services/Orders/index.js": `
const events = app.getElement("events.services.EventSvc");
exports.place = function (order) { return events.sendEvent("services.Orders", {orderId: order.id}); };
exports.placeNamed = function (order) { return events.sendEvent({sender: "services.Orders", kwargs: {orderId: order.id}}); };
exports.notAnObject = function () { return events.sendEvent("services.Orders", [1, 2]); };
`,
	"services/Resender/e.json": `{"title": "Resender", "type": "services.NormalType"}`,
	"services/Resender/index.js": `exports.again = function (nodeId) { return app.getElement("events.services.EventSvc").resend(nodeId); };
exports.op = function (name, id, data) {
  const ev = app.getElement("events.services.EventSvc");
  try { return data === undefined ? ev[name](id) : ev[name](id, data); } catch (e) { return {code: e.code, message: e.message}; }
};`,
	"events/OnOrder/e.json": `{"title": "On order", "type": "events.NormalType", "sender": "services.Orders"}`,
	"events/OnOrder/index.js": `exports.handle = function (event, ctx) {
  console.log("order", event.kwargs.orderId);
  app.getElement("events.services.EventSvc").sendEvent("events.OnOrder", {from: event.nodeId});
  return {seen: event.kwargs.orderId};
};`,
	"events/Audit/e.json":   `{"title": "Audit children", "type": "events.NormalType", "sender": "events.OnOrder"}`,
	"events/Audit/index.js": `exports.handle = function (event) { return event.kwargs.from; };`,
	"events/Flaky/e.json": `{"title": "Fails once", "type": "events.NormalType", "sender": "services.Orders",
		"retry": {"policy": "default", "interval": "50ms", "maxAttempts": 3}}`,
	"events/Flaky/index.js": `exports.handle = function (event, ctx) {
  if (event.attempt < 2) throw new Error("first try fails");
  return "ok on " + event.attempt;
};`,
	"events/Doomed/e.json":   `{"title": "Always fails", "type": "events.NormalType", "sender": "services.Orders", "retry": {"policy": "none"}}`,
	"events/Doomed/index.js": `exports.handle = function (event, ctx) { ctx.fail("never works"); };`,
	"events/Requeue/e.json": `{"title": "Requeue", "type": "events.NormalType", "sender": "services.Orders",
		"requeueOnError": true, "retry": {"maxAttempts": 2}}`,
	"events/Requeue/index.js": `exports.handle = function () { throw new Error("requeue me"); };`,
	"events/SingleA/e.json":   `{"title": "Singleton A", "type": "events.NormalType", "sender": "services.Orders", "handlerType": "singleton"}`,
	"events/SingleA/index.js": `exports.handle = function () { return "A"; };`,
	"events/SingleB/e.json":   `{"title": "Singleton B", "type": "events.NormalType", "sender": "services.Orders", "handlerType": "singleton"}`,
	"events/SingleB/index.js": `exports.handle = function () { return "B"; };`,
	"events/Off/e.json":       `{"title": "Disabled", "type": "events.NormalType", "sender": "services.Orders", "enabled": false}`,
	"events/Off/index.js":     `exports.handle = function () { return 1; };`,
}

// latest waits until every node of the request has reached a final state and returns them.
func latest(t *testing.T, h *host.Host, requestID string, nodes int) map[string]logstore.Row {
	t.Helper()
	ctx := context.Background()
	var byListener map[string]logstore.Row
	require.Eventually(t, func() bool {
		require.NoError(t, h.LogWriter().Flush(ctx))
		rows, err := h.LogStore().ByRequest(ctx, requestID)
		require.NoError(t, err)
		byListener = map[string]logstore.Row{}
		for _, r := range rows {
			if r.Status != logstore.StatusSuccess && r.Status != logstore.StatusFail {
				return false
			}
			byListener[r.FullName] = r
		}
		return len(rows) == nodes
	}, 30*time.Second, 20*time.Millisecond)
	return byListener
}

func TestSendEventFanOutRetriesAndDeadLetters(t *testing.T) {
	t.Parallel()
	h := setup(t, host.Config{Sandbox: host.SandboxInProcess, ServeEvents: true}, eventApp)
	res, err := h.CallService(context.Background(), "services.Orders", "place", []any{map[string]any{"id": int64(7)}})
	require.NoError(t, err)
	sent := res.Value.(map[string]any)
	require.ElementsMatch(t, []any{"events.OnOrder", "events.Flaky", "events.Doomed", "events.Requeue", "events.SingleA"},
		replaceSingleton(sent["subscribers"].([]any)), "every enabled matching listener, one of the singleton set")
	require.Len(t, sent["nodeIds"], 5)

	// The service call's own node, the 5 nodes of the event it sent, and the child node
	// OnOrder's handler sent to Audit: one request.
	nodes := latest(t, h, sent["requestId"].(string), 7)
	require.Equal(t, logstore.KindService, nodes["services.Orders"].Kind)
	require.Equal(t, nodes["services.Orders"].NodeID, nodes["events.OnOrder"].ParentNodeID, "the call's events are its children")
	require.Equal(t, logstore.StatusSuccess, nodes["events.OnOrder"].Status)
	require.JSONEq(t, `{"seen": 7}`, string(nodes["events.OnOrder"].Result))
	require.Contains(t, string(nodes["events.OnOrder"].Logs), "order 7")

	audit := nodes["events.Audit"]
	require.Equal(t, nodes["events.OnOrder"].NodeID, audit.ParentNodeID, "an event sent from a handler is a child node")
	require.Equal(t, logstore.StatusSuccess, audit.Status)

	flaky := nodes["events.Flaky"]
	require.Equal(t, logstore.StatusSuccess, flaky.Status)
	require.Equal(t, 2, flaky.Attempt)
	attempts, err := h.LogStore().Attempts(context.Background(), flaky.NodeID)
	require.NoError(t, err)
	var stages []string
	for _, a := range attempts {
		stages = append(stages, a.Status+"/"+a.Stage)
	}
	require.Equal(t, []string{"waiting/queued", "running/running", "waiting/retryScheduled", "running/running", "success/done"}, stages)

	doomed := nodes["events.Doomed"]
	require.Equal(t, logstore.StatusFail, doomed.Status)
	require.Equal(t, "deadLettered", doomed.Stage)
	require.Equal(t, "never works", doomed.Error.Message)

	requeue := nodes["events.Requeue"]
	require.Equal(t, "deadLettered", requeue.Stage)
	require.Equal(t, 2, requeue.Attempt, "requeueOnError is bounded by retry.maxAttempts")

	// A dead letter can be resent: it runs again as its next attempt, same event id.
	res2, err := h.CallService(context.Background(), "services.Resender", "again", []any{doomed.NodeID})
	require.NoError(t, err)
	require.EqualValues(t, 2, res2.Value.(map[string]any)["attempt"])
	require.Eventually(t, func() bool {
		require.NoError(t, h.LogWriter().Flush(context.Background()))
		rows, err := h.LogStore().Attempts(context.Background(), doomed.NodeID)
		require.NoError(t, err)
		last := rows[len(rows)-1]
		return last.Attempt == 2 && last.Stage == "deadLettered"
	}, 30*time.Second, 20*time.Millisecond)
	rows, err := h.LogStore().Attempts(context.Background(), doomed.NodeID)
	require.NoError(t, err)
	for _, r := range rows {
		require.Equal(t, sent["eventId"], r.EventID, "every state of the node carries the event id")
	}
	_, err = h.Resend(context.Background(), "node_unknown")
	require.ErrorIs(t, err, engine.ErrNotFound)

	// The node operations from JS: a dead letter cannot be paused (the error names its state),
	// can be retried with new data, then skipped; unknown nodes and requests are not found.
	op := func(args ...any) map[string]any {
		t.Helper()
		res, err := h.CallService(context.Background(), "services.Resender", "op", args)
		require.NoError(t, err)
		return res.Value.(map[string]any)
	}
	got := op("pause", doomed.NodeID)
	require.Equal(t, "conflict", got["code"])
	require.Contains(t, got["message"], "fail/deadLettered")
	require.EqualValues(t, 3, op("retry", doomed.NodeID, map[string]any{"orderId": 7})["attempt"])
	require.Eventually(t, func() bool {
		require.NoError(t, h.LogWriter().Flush(context.Background()))
		rows, err := h.LogStore().Attempts(context.Background(), doomed.NodeID)
		require.NoError(t, err)
		last := rows[len(rows)-1]
		return last.Attempt == 3 && last.Stage == "deadLettered" && strings.Contains(string(last.Kwargs), `"orderId":7`)
	}, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, "skipped", op("skip", doomed.NodeID)["stage"])
	require.Equal(t, "not_found", op("skip", "node_unknown")["code"])
	require.Equal(t, "not_found", op("revokeRequest", "req_unknown")["code"])
	got = op("revokeRequest", doomed.RequestID)
	require.Equal(t, "conflict", got["code"], "every node of the request has ended")
	require.Contains(t, got["message"], "finished")

	// Bulk resend by a log query: every failed node of a listener.
	bulk, err := h.BulkResend(context.Background(), logstore.Query{FullName: "events.Requeue"})
	require.NoError(t, err)
	require.Len(t, bulk.Resent, 1)
	require.Equal(t, requeue.NodeID, bulk.Resent[0].NodeID)
	require.Equal(t, 3, bulk.Resent[0].Attempt)
	require.False(t, bulk.Truncated)
	_, err = h.BulkResend(context.Background(), logstore.Query{Status: "done"})
	require.ErrorIs(t, err, logstore.ErrInvalidQuery)

	// The sub-tree of OnOrder's node holds it and its child.
	tree, err := h.LogStore().ByNode(context.Background(), sent["requestId"].(string), nodes["events.OnOrder"].NodeID)
	require.NoError(t, err)
	require.Len(t, tree, 2)
}

// replaceSingleton maps whichever singleton was picked to SingleA, so the assertion is stable.
func replaceSingleton(subs []any) []any {
	out := make([]any, len(subs))
	for i, s := range subs {
		if s == "events.SingleB" {
			s = "events.SingleA"
		}
		out[i] = s
	}
	return out
}

func TestSendEventBadInput(t *testing.T) {
	t.Parallel()
	h := setup(t, host.Config{Sandbox: host.SandboxInProcess, ServeEvents: true, MaxKwargsBytes: 1024}, eventApp)
	ctx := context.Background()
	_, err := h.CallService(ctx, "services.Orders", "notAnObject", nil)
	require.ErrorContains(t, err, `argument "kwargs" must be an object`)

	_, err = h.SendEvent(ctx, engine.SendRequest{Sender: "x", Kwargs: map[string]any{"big": string(make([]byte, 2000))}})
	require.ErrorIs(t, err, engine.ErrInvalidEvent)
	require.ErrorContains(t, err, "more than the limit of 1024")

	res, err := h.SendEvent(ctx, engine.SendRequest{Sender: "services.Nobody", Kwargs: map[string]any{}})
	require.NoError(t, err, "an unknown sender is accepted")
	require.Empty(t, res.Subscribers)
	require.Contains(t, res.Note, "no enabled listener")

	res, err = h.SendEvent(ctx, engine.SendRequest{Sender: "services.Orders", Kwargs: map[string]any{}, EventType: "events.NoSuchType"})
	require.NoError(t, err, "an unknown event type is accepted with zero subscribers")
	require.Empty(t, res.Subscribers)
	require.Contains(t, res.Note, "no element events.NoSuchType")

	named, err := h.CallService(ctx, "services.Orders", "placeNamed", []any{map[string]any{"id": int64(1)}})
	require.NoError(t, err)
	require.Len(t, named.Value.(map[string]any)["nodeIds"], 5, "named arguments send the same event")
}

func TestReliableBroadcastOnInstanceIsAConfigurationError(t *testing.T) {
	t.Parallel()
	dir := writeApp(t, map[string]string{
		"app.json":              `{"name": "bcast"}`,
		"events/Every/e.json":   `{"title": "Every host", "type": "events.NormalType", "sender": "*", "handlerType": "broadcast"}`,
		"events/Every/index.js": `exports.handle = function () {};`,
	})
	_, err := host.New(host.Config{AppDir: dir}, backends.Open)
	var ve *registry.ValidationError
	require.ErrorAs(t, err, &ve)
	require.ErrorContains(t, err, "broadcastIdentifier")
}

func TestBroadcastRunsOnEveryHost(t *testing.T) {
	t.Parallel()
	h := setup(t, host.Config{Sandbox: host.SandboxInProcess, ServeEvents: true}, map[string]string{
		"app.json":              `{"name": "bcast"}`,
		"events/Every/e.json":   `{"title": "Every host", "type": "events.NormalType", "sender": "*", "handlerType": "broadcast", "broadcastIdentifier": "host"}`,
		"events/Every/index.js": `exports.handle = function () { return "here"; };`,
	})
	res, err := h.SendEvent(context.Background(), engine.SendRequest{Sender: "anyone", Kwargs: map[string]any{}})
	require.NoError(t, err)
	var rows []logstore.Row
	require.Eventually(t, func() bool {
		require.NoError(t, h.LogWriter().Flush(context.Background()))
		rows, err = h.LogStore().ByRequest(context.Background(), res.RequestID)
		require.NoError(t, err)
		return len(rows) == 2 && rows[0].Status == logstore.StatusSuccess && rows[1].Status == logstore.StatusSuccess
	}, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, res.NodeIDs[0], rows[1].ParentNodeID, "this host's run is a child of the broadcast node")

	// Resending this receiver's node runs it again here only; resending the broadcast's own node
	// reaches every receiver again, each as its node's next attempt.
	receiver := rows[1].NodeID
	ctx := context.Background()
	attemptDone := func(attempt int) {
		require.Eventually(t, func() bool {
			require.NoError(t, h.LogWriter().Flush(ctx))
			at, err := h.LogStore().Attempts(ctx, receiver)
			require.NoError(t, err)
			last := at[len(at)-1]
			return last.Attempt == attempt && last.Status == logstore.StatusSuccess && last.Stage == "done"
		}, 30*time.Second, 20*time.Millisecond)
	}
	again, err := h.Resend(ctx, receiver)
	require.NoError(t, err)
	require.Equal(t, engine.ResendResult{NodeID: receiver, Attempt: 2}, again)
	attemptDone(2)
	all, err := h.Resend(ctx, res.NodeIDs[0])
	require.NoError(t, err)
	require.Equal(t, res.NodeIDs[0], all.NodeID)
	attemptDone(3)
}

func TestWaitCallback(t *testing.T) {
	t.Parallel()
	h := setup(t, host.Config{Sandbox: host.SandboxInProcess, ServeEvents: true}, map[string]string{
		"app.json":             `{"name": "cb"}`,
		"events/Wait/e.json":   `{"title": "Waits", "type": "events.NormalType", "sender": "s", "timeout": "1s", "retry": {"policy": "none"}}`,
		"events/Wait/index.js": `exports.handle = function (event, ctx) { ctx.waitCallback(); };`,
	})
	ctx := context.Background()
	waitFor := func(nodeID, stage string) logstore.Row {
		var last logstore.Row
		require.Eventually(t, func() bool {
			require.NoError(t, h.LogWriter().Flush(ctx))
			rows, err := h.LogStore().Attempts(ctx, nodeID)
			require.NoError(t, err)
			if len(rows) == 0 {
				return false
			}
			last = rows[len(rows)-1]
			return last.Stage == stage
		}, 30*time.Second, 10*time.Millisecond)
		return last
	}
	answered, err := h.SendEvent(ctx, engine.SendRequest{Sender: "s", Kwargs: map[string]any{}})
	require.NoError(t, err)
	forgotten, err := h.SendEvent(ctx, engine.SendRequest{Sender: "s", Kwargs: map[string]any{}})
	require.NoError(t, err)

	node := answered.NodeIDs[0]
	row := waitFor(node, "awaitingCallback")
	require.Equal(t, logstore.StatusRunning, row.Status)
	res, err := h.Callback(ctx, node, map[string]any{"paid": true})
	require.NoError(t, err)
	require.Equal(t, logstore.StatusSuccess, res.Status)
	row = waitFor(node, "callback")
	require.JSONEq(t, `{"paid": true}`, string(row.Result))

	_, err = h.Callback(ctx, node, nil)
	require.ErrorIs(t, err, engine.ErrConflict, "a node that is done takes no second callback")
	_, err = h.Callback(ctx, "node_nope", nil)
	require.ErrorIs(t, err, engine.ErrNotFound)

	row = waitFor(forgotten.NodeIDs[0], "callbackTimeout")
	require.Equal(t, logstore.StatusFail, row.Status, "a callback that never comes fails the node after the timeout")
	// The deadline watcher of the answered node must not fail it afterwards.
	time.Sleep(1200 * time.Millisecond)
	require.NoError(t, h.LogWriter().Flush(ctx))
	rows, err := h.LogStore().Attempts(ctx, node)
	require.NoError(t, err)
	require.Equal(t, "callback", rows[len(rows)-1].Stage)
}

func TestLagSamplesReachTheLog(t *testing.T) {
	t.Parallel()
	h := setup(t, host.Config{Sandbox: host.SandboxInProcess, ServeEvents: true, LagEvery: 100 * time.Millisecond}, map[string]string{
		"app.json":             `{"name": "lag"}`,
		"events/Slow/e.json":   `{"title": "Slow", "type": "events.NormalType", "sender": "s"}`,
		"events/Slow/index.js": `exports.handle = function () { var end = Date.now() + 150; while (Date.now() < end) {} };`,
	})
	ctx := context.Background()
	for range 10 {
		_, err := h.SendEvent(ctx, engine.SendRequest{Sender: "s", Kwargs: map[string]any{}})
		require.NoError(t, err)
	}
	samples := func() []engine.LagSample {
		require.NoError(t, h.LogWriter().Flush(ctx))
		page, err := h.LogStore().Query(ctx, logstore.Query{FullName: logstore.LagPrefix + "events.Slow", PageSize: 1000})
		require.NoError(t, err)
		out := make([]engine.LagSample, len(page.RowDatas))
		for i, r := range page.RowDatas {
			require.Equal(t, logstore.KindLag, r.Kind)
			require.NoError(t, json.Unmarshal(r.Result, &out[i]))
		}
		return out // newest first
	}
	require.Eventually(t, func() bool {
		s := samples()
		return len(s) >= 2 && s[0].Pending+s[0].Undelivered == 0 && s[len(s)-1].Pending+s[len(s)-1].Undelivered > 0
	}, 30*time.Second, 50*time.Millisecond, "a sample with a backlog, then one when it drained")
	page, err := h.LogStore().Query(ctx, logstore.Query{})
	require.NoError(t, err)
	for _, r := range page.RowDatas {
		require.Equal(t, "events.Slow", r.FullName, "queries over every element show no lag samples")
	}
	idle := len(samples())
	time.Sleep(300 * time.Millisecond) // three sampling periods with nothing queued
	require.Len(t, samples(), idle, "an idle listener writes no samples")
}
