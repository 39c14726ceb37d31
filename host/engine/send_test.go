package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/internal/parttest"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

// echo is a listener of sender whose handler returns who sent the event, with more e.json
// fields in extra (`"retry": {...}, ` and the like, each ending in a comma).
func echo(app map[string]string, name, sender, extra string) map[string]string {
	app["events/"+name+"/e.json"] = `{"title": "` + name + `", "type": "events.NormalType", ` + extra + `"sender": "` + sender + `"}`
	app["events/"+name+"/index.js"] = `exports.handle = function (event) { return event.sender; };`
	return app
}

func TestNewRequiresEveryBackend(t *testing.T) {
	t.Parallel()
	_, err := engine.New(engine.Options{})
	require.ErrorContains(t, err, "Bus, Executor, Log, Store and Snapshot are required")
}

// TestSendEventFanOut: one node per enabled listener whose sender pattern matches — an exact
// fullName, "*", or "prefix.*" (which needs the dot) — and none for a disabled one.
func TestSendEventFanOut(t *testing.T) {
	t.Parallel()
	app := map[string]string{}
	echo(app, "Exact", "services.Orders", "")
	echo(app, "Star", "*", "")
	echo(app, "Prefix", "services.*", "")
	echo(app, "Models", "models.*", "")
	echo(app, "Off", "*", `"enabled": false, `)
	b := setup(t, app)

	cases := []struct {
		sender string
		want   []string
	}{
		{"services.Orders", []string{"events.Exact", "events.Prefix", "events.Star"}},
		{"services.Other", []string{"events.Prefix", "events.Star"}},
		{"models.User", []string{"events.Models", "events.Star"}},
		{"servicesX.Orders", []string{"events.Star"}},
		{"services", []string{"events.Star"}},
	}
	for _, tc := range cases {
		t.Run(tc.sender, func(t *testing.T) {
			t.Parallel()
			res, err := b.eng.SendEvent(b.ctx, engine.SendRequest{Sender: tc.sender, Kwargs: map[string]any{}})
			require.NoError(t, err)
			require.ElementsMatch(t, tc.want, res.Subscribers)
			require.Len(t, res.NodeIDs, len(tc.want))
			require.Empty(t, res.Note)
			require.True(t, strings.HasPrefix(res.EventID, "evt_"), res.EventID)
			require.True(t, strings.HasPrefix(res.RequestID, "req_"), res.RequestID)
			seen := map[string]bool{}
			for i, node := range res.NodeIDs {
				require.True(t, strings.HasPrefix(node, "node_"), node)
				require.False(t, seen[node], "one node per listener")
				seen[node] = true
				rows := b.awaitStage(node, logstore.StageDone, 1)
				last := rows[len(rows)-1]
				require.Equal(t, res.Subscribers[i], last.FullName)
				require.JSONEq(t, `"`+tc.sender+`"`, string(last.Result))
			}
		})
	}
}

// TestSendEventJoinsTheCallersRequest: an event sent from inside an execution gives its nodes
// the caller's request and makes them children of the caller's node.
func TestSendEventJoinsTheCallersRequest(t *testing.T) {
	t.Parallel()
	b := setup(t, echo(map[string]string{}, "Child", "s", ""))
	res, err := b.eng.SendEvent(b.ctx, engine.SendRequest{Sender: "s", Kwargs: map[string]any{}, RequestID: "req_caller", ParentNodeID: "node_caller"})
	require.NoError(t, err)
	require.Equal(t, "req_caller", res.RequestID)
	for _, r := range b.awaitStage(res.NodeIDs[0], logstore.StageDone, 1) {
		require.Equal(t, "req_caller", r.RequestID)
		require.Equal(t, "node_caller", r.ParentNodeID)
	}
	require.NoError(t, b.log.Writer.Flush(b.ctx))
	nodes, err := b.log.Store.ByRequest(b.ctx, "req_caller")
	require.NoError(t, err)
	require.Len(t, nodes, 1)
	require.Equal(t, res.NodeIDs[0], nodes[0].NodeID)
}

// TestEventTypeAndModelFilters: an event reaches listeners of its eventType and of Types built
// on it; model listeners hear only the writes whose operate they list and, with fields, that
// changed one of them.
func TestEventTypeAndModelFilters(t *testing.T) {
	t.Parallel()
	app := map[string]string{
		"events/OrderType/e.json":  `{"title": "Order events", "type": "events.Meta", "schema": {"sender": {"type": "string", "required": true}}}`,
		"models/Order/e.json":      `{"title": "Order", "type": "models.NormalType", "fields": [{"name": "status", "type": "Stext"}, {"name": "note", "type": "Stext"}]}`,
		"events/OnStatus/e.json":   `{"title": "On status", "type": "events.ModelType", "model": "models.Order", "operate": ["afterUpdate"], "fields": ["status"]}`,
		"events/OnStatus/index.js": `exports.handle = function (event) { return event.kwargs; };`,
		"events/OnWrite/e.json":    `{"title": "On any write", "type": "events.ModelType", "model": "models.Order"}`,
		"events/OnWrite/index.js":  `exports.handle = function (event) { return event.kwargs; };`,
		"events/Typed/e.json":      `{"title": "Typed", "type": "events.OrderType", "sender": "*"}`,
		"events/Typed/index.js":    `exports.handle = function (event) { return event.eventType; };`,
	}
	echo(app, "Plain", "*", "")
	b := setup(t, app)

	cases := []struct {
		name string
		req  engine.SendRequest
		want []string
		note string
	}{
		{"default type", engine.SendRequest{Sender: "x"}, []string{"events.Plain"}, ""},
		{"a Type of its own", engine.SendRequest{Sender: "x", EventType: "events.OrderType"}, []string{"events.Typed"}, ""},
		{"the Meta reaches every Type built on it", engine.SendRequest{Sender: "x", EventType: "events.Meta"}, []string{"events.Plain", "events.Typed"}, ""},
		{"model listeners hear their model's sender", engine.SendRequest{Sender: "models.Order", EventType: "events.Meta"},
			[]string{"events.OnStatus", "events.OnWrite", "events.Plain", "events.Typed"}, ""},
		{"afterCreate", engine.SendRequest{Sender: "models.Order", EventType: engine.ModelEventType, Operate: "afterCreate", Changed: []string{"status"}},
			[]string{"events.OnWrite"}, ""},
		{"afterUpdate of another field", engine.SendRequest{Sender: "models.Order", EventType: engine.ModelEventType, Operate: "afterUpdate", Changed: []string{"note"}},
			[]string{"events.OnWrite"}, ""},
		{"afterUpdate of a listed field", engine.SendRequest{Sender: "models.Order", EventType: engine.ModelEventType, Operate: "afterUpdate", Changed: []string{"note", "status"}},
			[]string{"events.OnStatus", "events.OnWrite"}, ""},
		{"a model nobody listens to", engine.SendRequest{Sender: "models.Nope", EventType: engine.ModelEventType, Operate: "afterCreate"},
			nil, "no enabled listener of events.ModelType listens to sender models.Nope"},
		{"an unknown eventType", engine.SendRequest{Sender: "x", EventType: "events.NoSuchType"},
			nil, "no element events.NoSuchType: the event was accepted but no listener can hear it"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.req.Kwargs = map[string]any{"k": "v"}
			res, err := b.eng.SendEvent(b.ctx, tc.req)
			require.NoError(t, err)
			require.ElementsMatch(t, tc.want, res.Subscribers)
			require.Equal(t, tc.note, res.Note)
			require.NotNil(t, res.NodeIDs, "an empty answer is [], not null")
			for _, n := range res.NodeIDs {
				rows := b.awaitStage(n, logstore.StageDone, 1)
				require.Equal(t, orDefault(tc.req.EventType), rows[0].EventType)
			}
		})
	}
}

func orDefault(eventType string) string {
	if eventType == "" {
		return engine.DefaultEventType
	}
	return eventType
}

// TestSingletonTakesOneOfEachSet: listeners of one sender and type with handlerType singleton
// form a set, and each event goes to one of them; a singleton of another sender pattern is a set
// of its own; pool listeners all hear it.
func TestSingletonTakesOneOfEachSet(t *testing.T) {
	t.Parallel()
	app := map[string]string{}
	echo(app, "SingleA", "services.Orders", `"handlerType": "singleton", `)
	echo(app, "SingleB", "services.Orders", `"handlerType": "singleton", `)
	echo(app, "Alone", "*", `"handlerType": "singleton", `)
	echo(app, "Pool", "services.Orders", "")
	b := setup(t, app)
	picked := map[string]int{}
	for range 24 {
		res := b.send("services.Orders", map[string]any{})
		require.Len(t, res.Subscribers, 3, "%v", res.Subscribers)
		require.Contains(t, res.Subscribers, "events.Pool")
		require.Contains(t, res.Subscribers, "events.Alone")
		var set []string
		for _, s := range res.Subscribers {
			if s == "events.SingleA" || s == "events.SingleB" {
				set = append(set, s)
			}
		}
		require.Len(t, set, 1, "one listener of the set: %v", res.Subscribers)
		picked[set[0]]++
		b.awaitStage(nodeOf(t, res, set[0]), logstore.StageDone, 1)
	}
	require.Len(t, picked, 2, "events spread over the set (24 events all picking one: p < 1e-6): %v", picked)
}

// TestPoolAndBroadcastAcrossHosts runs two engines (two hosts) on one bus: a pool listener runs
// each event once in the cluster; a broadcast listener on "instance" runs it on each host, as a
// child node of the node recorded at send; on "host" once per machine (both run on one).
func TestPoolAndBroadcastAcrossHosts(t *testing.T) {
	t.Parallel()
	app := map[string]string{}
	echo(app, "Pool", "s", "")
	echo(app, "Every", "s", `"handlerType": "broadcast", "broadcastIdentifier": "instance", "reliableDelivery": false, `)
	echo(app, "PerMachine", "s", `"handlerType": "broadcast", "broadcastIdentifier": "host", `)
	b := setup(t, app)
	other := vocab.NewID("inst_")
	b.newEngine(other)

	res := b.send("s", map[string]any{})
	require.ElementsMatch(t, []string{"events.Every", "events.PerMachine", "events.Pool"}, res.Subscribers)
	children := func(rows []logstore.Row, parent string) map[string]logstore.Row {
		out := map[string]logstore.Row{}
		for _, r := range rows {
			if r.ParentNodeID == parent && r.Stage == logstore.StageDone {
				out[r.NodeID] = r
			}
		}
		return out
	}
	every, perMachine, pool := nodeOf(t, res, "events.Every"), nodeOf(t, res, "events.PerMachine"), nodeOf(t, res, "events.Pool")
	rows := b.log.Sink.Await(t, "two runs of Every, one of PerMachine and of Pool", func(rows []logstore.Row) bool {
		return len(children(rows, every)) == 2 && len(children(rows, perMachine)) == 1 && len(b.doneRows(rows, pool)) == 1
	})

	sent := b.attempts(every)
	require.Equal(t, []string{"success/broadcast@1"}, stages(sent), "the broadcast's own node only records the send")
	hosts := map[string]bool{}
	for node, r := range children(rows, every) {
		require.True(t, strings.HasPrefix(node, every+"."), "a receiver's node is the sent node and a suffix naming the receiver: %s", node)
		require.Equal(t, []string{"running/running@1", "success/done@1"}, stages(b.attempts(node)))
		hosts[r.Host] = true
	}
	require.Equal(t, map[string]bool{machine + "/" + b.instance: true, machine + "/" + other: true}, hosts, "each host ran it, under its own label")
	for node := range children(rows, perMachine) {
		require.True(t, strings.HasPrefix(node, perMachine+"."))
	}
	require.Equal(t, []string{"waiting/queued@1", "running/running@1", "success/done@1"}, stages(b.attempts(pool)), "a pool node runs once in the cluster")

	// Resending one receiver's node runs it again on that receiver only; resending the
	// broadcast's own node runs every receiver's node again, each as its own next attempt.
	var mine, theirs string
	for node, r := range children(rows, every) {
		if r.Host == machine+"/"+other {
			theirs = node
		} else {
			mine = node
		}
	}
	again, err := b.eng.Resend(b.ctx, theirs)
	require.NoError(t, err)
	require.Equal(t, engine.ResendResult{NodeID: theirs, Attempt: 2}, again)
	ran := b.awaitStage(theirs, logstore.StageDone, 2)
	require.Equal(t, machine+"/"+other, ran[len(ran)-1].Host, "the receiver it names ran it")
	all, err := b.eng.Resend(b.ctx, every)
	require.NoError(t, err)
	require.Equal(t, engine.ResendResult{NodeID: every, Attempt: 2}, all)
	for _, r := range b.awaitStage(theirs, logstore.StageDone, 3) {
		if r.Stage != logstore.StageResent {
			require.Equal(t, machine+"/"+other, r.Host, "only its own receiver runs a receiver's node")
		}
	}
	mineRows := b.awaitStage(mine, logstore.StageDone, 2)
	require.Equal(t, []string{"running/running@1", "success/done@1", "running/running@2", "success/done@2"}, stages(mineRows),
		"the receiver-only resend did not run here")
}

func (b *bundle) doneRows(rows []logstore.Row, node string) []logstore.Row {
	var out []logstore.Row
	for _, r := range rows {
		if r.NodeID == node && r.Stage == logstore.StageDone {
			out = append(out, r)
		}
	}
	return out
}

// TestSendEventRefusesBadInput: what cannot be delivered is refused as invalid_argument, saying
// why, and nothing is sent or logged.
func TestSendEventRefusesBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t, echo(map[string]string{}, "Any", "*", ""), func(o *engine.Options) { o.MaxKwargsBytes = 64 })
	cases := []struct {
		name string
		req  engine.SendRequest
		msg  string
	}{
		{"empty sender", engine.SendRequest{Kwargs: map[string]any{}}, "sender is empty"},
		{"sender with a NUL", engine.SendRequest{Sender: "models.A\x00B", Kwargs: map[string]any{}}, "is not an element fullName"},
		{"sender a path", engine.SendRequest{Sender: "../etc/passwd", Kwargs: map[string]any{}}, "is not an element fullName"},
		{"sender too long", engine.SendRequest{Sender: strings.Repeat("a", vocab.MaxFullName+1), Kwargs: map[string]any{}}, "at most 512 bytes"},
		{"eventType not a name", engine.SendRequest{Sender: "s", EventType: "events/Normal", Kwargs: map[string]any{}}, "eventType"},
		{"kwargs missing", engine.SendRequest{Sender: "s"}, "kwargs must be an object"},
		{"kwargs an array", engine.SendRequest{Sender: "s", Kwargs: []any{int64(1), int64(2)}}, "kwargs must be an object"},
		{"kwargs a string", engine.SendRequest{Sender: "s", Kwargs: "orderId=1"}, "kwargs must be an object"},
		{"kwargs not JSON", engine.SendRequest{Sender: "s", Kwargs: map[string]any{"x": math.NaN()}}, "kwargs cannot be sent as JSON"},
		{"kwargs too large", engine.SendRequest{Sender: "s", Kwargs: map[string]any{"k": strings.Repeat("x", 57)}}, "kwargs are 65 bytes, more than the limit of 64"},
		// Issue 12: 9,000 levels in 17 KiB cost the host 914 MiB, again on every retry.
		{"kwargs nested too deep", engine.SendRequest{Sender: "s", Kwargs: nestedKwargs(9000)}, "kwargs nest deeper than 64 levels (the nesting cap, --max-depth)"},
		{"kwargs one level too deep", engine.SendRequest{Sender: "s", Kwargs: nestedKwargs(65)}, "deeper than 64"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := b.eng.SendEvent(b.ctx, tc.req)
			require.ErrorIs(t, err, engine.ErrInvalidEvent)
			require.Equal(t, vocab.CodeInvalidArgument, vocab.CodeOf(err))
			require.ErrorContains(t, err, tc.msg)
		})
	}
	require.Zero(t, b.eng.Stats().Sent)
	require.Empty(t, b.log.Sink.All(), "nothing was logged")

	// Exactly at the limit is fine: {"k":"…"} is 8 bytes and 56 characters.
	res := b.send("s", map[string]any{"k": strings.Repeat("x", 56)})
	b.awaitStage(res.NodeIDs[0], logstore.StageDone, 1)
	require.Equal(t, engine.Stats{Sent: 1, Handled: 1}, b.eng.Stats())
}

// TestSendEventWithTheBusDown: a bus that refuses the event is ErrUnavailable (code
// unavailable), and nothing is reported sent.
func TestSendEventWithTheBusDown(t *testing.T) {
	t.Parallel()
	b := setup(t, echo(map[string]string{}, "Any", "*", ""))
	require.NoError(t, b.bus.Close())
	_, err := b.eng.SendEvent(b.ctx, engine.SendRequest{Sender: "s", Kwargs: map[string]any{}})
	require.ErrorIs(t, err, engine.ErrUnavailable)
	require.Equal(t, vocab.CodeUnavailable, vocab.CodeOf(err))
	require.ErrorContains(t, err, "events.Any")
	require.Empty(t, b.log.Sink.All(), "no queued row for an event that was not sent")
	require.Zero(t, b.eng.Stats().Sent)
}

// TestBigIntegersReachTheHandlerExactly: an id above 2^53 in kwargs reaches the handler as sent
// — on the first try, on a retry (which travels through the retry queue) and on a resend (whose
// kwargs come back from the log) — and the result row holds it exactly.
func TestBigIntegersReachTheHandlerExactly(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{
		"events/Big/e.json": `{"title": "Big", "type": "events.NormalType", "sender": "s", "retry": {"interval": "10ms", "maxAttempts": 2}}`,
		"events/Big/index.js": `exports.handle = function (event) {
  if (event.attempt === 1) throw new Error("once more");
  return {id: event.kwargs.orderId, text: String(event.kwargs.orderId), nested: event.kwargs.ids[1], attempt: event.attempt};
};`,
	})
	const big = int64(9007199254740993) // 2^53 + 1: a float64 would make it ...992
	res := b.send("s", map[string]any{"orderId": big, "ids": []any{int64(1), big}})
	node := res.NodeIDs[0]
	want := func(attempt int) string {
		return fmt.Sprintf(`{"id": 9007199254740993, "text": "9007199254740993", "nested": 9007199254740993, "attempt": %d}`, attempt)
	}
	rows := b.awaitStage(node, logstore.StageDone, 2)
	last := rows[len(rows)-1]
	require.JSONEq(t, want(2), string(last.Result))
	require.Contains(t, string(last.Result), "9007199254740993")
	require.Contains(t, string(rows[0].Kwargs), "9007199254740993", "the log keeps the kwargs as sent")

	again, err := b.eng.Resend(b.ctx, node)
	require.NoError(t, err)
	require.Equal(t, 3, again.Attempt)
	rows = b.awaitStage(node, logstore.StageDone, 3)
	require.JSONEq(t, want(3), string(rows[len(rows)-1].Result))
}

// TestLogRowsOfADelivery: the rows of one node, as the store orders them, go queued → running →
// done with rising seq; each carries the node's fields and the recorder's host label; a run
// longer than a moment shows as running before it ends.
func TestLogRowsOfADelivery(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{
		"events/Slow/e.json": `{"title": "Slow", "type": "events.NormalType", "sender": "s"}`,
		"events/Slow/index.js": `exports.handle = function (event, ctx) {
  console.log("working on", event.kwargs.orderId);
  app.getElement("services.Probe").gate(event.nodeId);
  return {done: event.kwargs.orderId};
};`,
	})
	require.Equal(t, machine+"/"+b.instance, b.eng.Label())
	require.Equal(t, b.rec.Host(), b.eng.Label())
	before := time.Now()
	res, err := b.eng.SendEvent(b.ctx, engine.SendRequest{Sender: "s", Kwargs: map[string]any{"orderId": int64(7)}, RequestID: "req_rows"})
	require.NoError(t, err)
	node := res.NodeIDs[0]

	// Held at the gate, the run shows as running on its own once it has lasted a moment.
	b.probe.AwaitHit(t, node)
	rows := b.awaitStage(node, logstore.StageRunning, 1)
	require.Equal(t, []string{"waiting/queued@1", "running/running@1"}, stages(rows))
	b.probe.Open(node)
	rows = b.awaitStage(node, logstore.StageDone, 1)
	require.Equal(t, []string{"waiting/queued@1", "running/running@1", "success/done@1"}, stages(rows))

	require.Equal(t, logstore.StatusWaiting, rows[0].Status)
	require.Equal(t, logstore.StageQueued, rows[0].Stage)
	require.Equal(t, logstore.StageRunning, rows[1].Stage)
	require.Equal(t, logstore.StageDone, rows[2].Stage)
	ids := map[string]bool{}
	for i, r := range rows {
		require.False(t, ids[r.ID], "every state is a row of its own")
		ids[r.ID] = true
		require.Equal(t, logstore.KindEvent, r.Kind)
		require.Equal(t, "events.Slow", r.FullName)
		require.Equal(t, "s", r.Sender)
		require.Equal(t, engine.DefaultEventType, r.EventType)
		require.Equal(t, res.EventID, r.EventID)
		require.Equal(t, "req_rows", r.RequestID)
		require.Equal(t, node, r.NodeID)
		require.Equal(t, b.rec.Host(), r.Host, "rows carry the recorder's label")
		require.Equal(t, rows[0].CreatedAt, r.CreatedAt, "every row of a node carries when it was created")
		require.JSONEq(t, `{"orderId": 7}`, string(r.Kwargs))
		require.False(t, r.CreatedAt.Before(before.Truncate(time.Millisecond)))
		if i > 0 {
			require.Greater(t, r.Seq, rows[i-1].Seq, "seq rises with each state")
			require.False(t, r.RecordedAt.Before(rows[i-1].RecordedAt))
			require.False(t, r.RecordedAt.Before(rows[0].RecordedAt.Add(time.Millisecond)),
				"states after the send are recorded at least a millisecond after it, so no store can order them first")
		}
	}
	done := rows[2]
	require.JSONEq(t, `{"done": 7}`, string(done.Result))
	require.False(t, done.StartTime.IsZero())
	require.False(t, done.EndTime.Before(done.StartTime))
	require.GreaterOrEqual(t, done.Duration, int64(0))
	var logs []map[string]any
	require.NoError(t, json.Unmarshal(done.Logs, &logs))
	require.Len(t, logs, 1)
	require.Equal(t, "working on 7", logs[0]["message"])
	require.Nil(t, done.Error)
	for _, r := range b.log.Sink.All() {
		require.NotEqual(t, logstore.KindLag, r.Kind, "LagEvery < 0 samples nothing")
	}
	require.Equal(t, engine.Stats{Sent: 1, Handled: 1}, b.eng.Stats())
}

// TestStopHandsInFlightDeliveriesBack: a handler still running when its host stops is cut short
// and its delivery goes back to the bus, where another host takes it and runs it to the end as
// the next attempt; the cut-short attempt ends interrupted, so the log shows that it ran twice.
func TestStopHandsInFlightDeliveriesBack(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{
		"events/Held/e.json":   `{"title": "Held", "type": "events.NormalType", "sender": "s"}`,
		"events/Held/index.js": `exports.handle = function (event) { app.getElement("services.Probe").gate("held"); return "finished"; };`,
	})
	res := b.send("s", map[string]any{})
	node := res.NodeIDs[0]
	b.probe.AwaitHit(t, "held")
	ctx, cancel := context.WithTimeout(context.Background(), parttest.WaitLimit)
	defer cancel()
	require.NoError(t, b.eng.Stop(ctx))
	require.NoError(t, b.eng.Stop(ctx), "Stop is safe to call twice")

	b.probe.Open("held")
	other := vocab.NewID("inst_")
	b.newEngine(other)
	rows := b.awaitStage(node, logstore.StageDone, 2)
	last := rows[len(rows)-1]
	require.Equal(t, machine+"/"+other, last.Host, "the other host ran it")
	got := stages(rows)
	require.Contains(t, got, "fail/interrupted@1", "the cut-short attempt ends in the log")
	require.Equal(t, "success/done@2", got[len(got)-1])
}

// TestReloadFollowsTheApp: Reload subscribes new listeners, drops disabled ones and resubscribes
// changed ones; before Start it does nothing.
func TestReloadFollowsTheApp(t *testing.T) {
	t.Parallel()
	v1 := echo(map[string]string{}, "First", "s", "")
	b := setup(t, v1)
	res := b.send("s", map[string]any{})
	require.Equal(t, []string{"events.First"}, res.Subscribers)
	b.awaitStage(res.NodeIDs[0], logstore.StageDone, 1)

	reload := func(files map[string]string) {
		t.Helper()
		snap := loadApp(t, files)
		require.NoError(t, b.vm(t).Load(parttest.SourceOf(snap)))
		b.snap.Store(snap)
		require.NoError(t, b.eng.Reload(b.ctx, snap))
	}
	v2 := echo(echo(map[string]string{}, "First", "s", `"enabled": false, `), "Second", "s", "")
	reload(v2)
	res = b.send("s", map[string]any{})
	require.Equal(t, []string{"events.Second"}, res.Subscribers)
	b.awaitStage(res.NodeIDs[0], logstore.StageDone, 1)

	v3 := echo(map[string]string{}, "Second", "s", `"retry": {"policy": "none"}, `)
	reload(v3)
	res = b.send("s", map[string]any{})
	b.awaitStage(res.NodeIDs[0], logstore.StageDone, 1)

	stopped, err := engine.New(engine.Options{Bus: b.bus, Executor: b.vm(t), Log: b.rec, Store: b.log.Store, Snapshot: b.snap.Load})
	require.NoError(t, err)
	require.NoError(t, stopped.Reload(b.ctx, b.snap.Load()), "an engine not started ignores reloads")
	require.NoError(t, stopped.Stop(b.ctx))
}

// nestedKwargs is a kwargs object n levels deep (the object itself is the first).
func nestedKwargs(n int) map[string]any {
	m := map[string]any{}
	for i := 1; i < n; i++ {
		m = map[string]any{"k": m}
	}
	return m
}
