package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/bus/redisbus"
	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/internal/parttest"
	"github.com/trellis-run/trellis/host/lifecycle"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

// hookJS is a listener whose hooks change what they may: node_enter adds one to kwargs.n,
// node_finish wraps the result, the failure hooks prefix the error's message; the read-only
// hooks try to change their data too. Every hook returns a value, which nothing uses.
const hookJS = `
exports.handle = function (event, ctx) {
	if (event.kwargs.mode === "fail") ctx.fail("nope");
	if (event.kwargs.mode === "throw") throw new Error("boom");
	if (event.kwargs.mode === "wait") ctx.waitCallback();
	if (event.kwargs.mode === "loop") for (;;) {}
	return {doubled: event.kwargs.n * 2};
};
exports.node_enter = function (data, parent) { console.log(JSON.stringify([data, parent])); data.kwargs.n = (data.kwargs.n || 0) + 1; parent.sender = "changed"; return true; };
exports.node_finish = function (data, parent) { console.log(JSON.stringify([data, parent])); data.result = {was: data.result, by: "node_finish"}; return "ignored"; };
exports.node_execute_fail = function (data, parent) { console.log(JSON.stringify([data, parent])); data.error.message = "hooked: " + data.error.message; data.error.code = "x"; };
exports.node_execute_exception = function (data, parent) { console.log(JSON.stringify([data, parent])); data.error.message = "hooked: " + data.error.message; };
exports.pre_callback = function (data) { data.callbackData = "changed"; data.result = "changed"; };
exports.post_callback = function (data) { data.callbackData = "changed"; };
exports.pre_retry_node = function (data) { data.kwargs = "changed"; return 1; };
`

var hooksApp = map[string]string{
	"events/Hooked/e.json":   `{"title": "Hooked", "type": "events.NormalType", "sender": "hooked", "needRunHook": true, "timeout": "5s", "retry": {"policy": "none"}}`,
	"events/Hooked/index.js": hookJS,
	"events/Slow/e.json":     `{"title": "Times out", "type": "events.NormalType", "sender": "slow", "needRunHook": true, "timeout": "300ms", "retry": {"policy": "none"}}`,
	"events/Slow/index.js":   hookJS,
	"events/Ignoring/e.json": `{"title": "Ignores failures", "type": "events.NormalType", "sender": "ignoring", "needRunHook": true, "ignoreFailure": true,
		"retry": {"policy": "default", "interval": "1s", "maxAttempts": 3}}`,
	"events/Ignoring/index.js": hookJS,
	"events/Plain/e.json":      `{"title": "Hooks off", "type": "events.NormalType", "sender": "plain", "retry": {"policy": "none"}}`,
	"events/Plain/index.js":    hookJS,
	"events/BadHooks/e.json":   `{"title": "Hooks that fail", "type": "events.NormalType", "sender": "bad", "needRunHook": true, "timeout": "300ms", "retry": {"policy": "none"}}`,
	"events/BadHooks/index.js": `exports.handle = function () { return "mine"; };
		exports.node_enter = function (data) { data.kwargs = {broken: true}; throw new Error("enter broke"); };
		exports.node_finish = function (data) { data.result = "lost"; for (;;) {} };`,
}

// signalLog is an Emitter that keeps every signal.
type signalLog struct {
	mu  sync.Mutex
	all []lifecycle.Signal
}

func (s *signalLog) Emit(_ context.Context, sig lifecycle.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all = append(s.all, sig)
}

// of is the signals of request requestID, in the order they were emitted.
func (s *signalLog) of(requestID string) []lifecycle.Signal {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []lifecycle.Signal
	for _, sig := range s.all {
		if sig.RequestID == requestID {
			out = append(out, sig)
		}
	}
	return out
}

func types(sigs []lifecycle.Signal) []string {
	out := make([]string, len(sigs))
	for i, s := range sigs {
		out[i] = string(s.Type)
	}
	return out
}

// hookRows waits until node has n hook rows and returns them, oldest first.
func hookRows(t *testing.T, l *parttest.Log, node string, n int) []logstore.Row {
	t.Helper()
	rows := l.Sink.Await(t, fmt.Sprintf("%d hook rows of %s", n, node), func(rows []logstore.Row) bool {
		c := 0
		for _, r := range rows {
			if r.Kind == logstore.KindHook && r.ParentNodeID == node {
				c++
			}
		}
		return c >= n
	})
	var out []logstore.Row
	for _, r := range rows {
		if r.Kind == logstore.KindHook && r.ParentNodeID == node {
			out = append(out, r)
		}
	}
	return out
}

func hookNames(rows []logstore.Row) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.EventType + ":" + r.Status + "@" + fmt.Sprint(r.Attempt)
	}
	return out
}

// args is a hook row's kwargs: the data and parentData the hook was called with.
func args(t *testing.T, r logstore.Row) (map[string]any, map[string]any) {
	t.Helper()
	var a []map[string]any
	require.NoError(t, json.Unmarshal(r.Kwargs, &a), "kwargs of a hook row are [data, parentData]: %s", r.Kwargs)
	require.Len(t, a, 2)
	return a[0], a[1]
}

// logged is what the hooks of the node's row printed, by hook: on the delivery path a hook that
// succeeds has no row of its own, and its console output (here, its arguments as JSON) is in
// the node's row, each line prefixed "[hook] ".
func logged(t *testing.T, r logstore.Row) (order []string, argsOf map[string][]map[string]any) {
	t.Helper()
	var logs []struct{ Message string }
	require.NoError(t, json.Unmarshal(r.Logs, &logs), "logs: %s", r.Logs)
	argsOf = map[string][]map[string]any{}
	for _, l := range logs {
		if !strings.HasPrefix(l.Message, "[") {
			order = append(order, "handler")
			continue
		}
		name, text, _ := strings.Cut(strings.TrimPrefix(l.Message, "["), "] ")
		var a []map[string]any
		require.NoError(t, json.Unmarshal([]byte(text), &a), text)
		order = append(order, name)
		argsOf[name] = a
	}
	return order, argsOf
}

// noHookRows checks that node has no hook row of its own.
func noHookRows(t *testing.T, l *parttest.Log, node string) {
	t.Helper()
	for _, r := range l.Sink.All() {
		require.False(t, r.Kind == logstore.KindHook && r.ParentNodeID == node, "hook row %s: hooks that succeed on the delivery path have none", r.NodeID)
	}
}

func hookBundle(t *testing.T, sigs *signalLog, onRedis bool) *bundle {
	t.Helper()
	return setup(t, hooksApp, func(o *engine.Options) {
		o.Signals = sigs
		if onRedis {
			o.Bus = redisBus(t)
		}
	})
}

// redisBus is a bus on the test Redis (TRELLIS_TEST_REDIS) under a key prefix of its own, or
// skips the test.
func redisBus(t *testing.T) *redisbus.Bus {
	t.Helper()
	url := os.Getenv("TRELLIS_TEST_REDIS")
	if url == "" {
		t.Skip("TRELLIS_TEST_REDIS is not set; run `eval \"$(scripts/services.sh start)\"` to test against a real Redis")
	}
	rb, err := redisbus.New(redisbus.Options{URL: url, Prefix: "trellis:enginehooks:" + vocab.NewID("") + ":", Block: 200 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rb.Close() })
	return rb
}

// TestHooksOfASuccessfulNode: node_enter runs before the handler and its change of data.kwargs
// is what the handler receives; node_finish runs after it and its change of data.result is what
// the node saves; each once, in order, as a hook row under the node, with the documented data.
// The signals of the request come in order: prepare, node_enter, node_finish. On the embedded
// bus and on Redis.
func TestHooksOfASuccessfulNode(t *testing.T) {
	t.Parallel()
	for _, onRedis := range []bool{false, true} {
		t.Run(map[bool]string{false: "embedded", true: "redis"}[onRedis], func(t *testing.T) {
			t.Parallel()
			sigs := &signalLog{}
			b := hookBundle(t, sigs, onRedis)
			res := b.send("hooked", map[string]any{"n": int64(1), "big": int64(9007199254740993)})
			node := res.NodeIDs[0]
			rows := b.awaitStage(node, logstore.StageDone, 1)
			done := rows[len(rows)-1]
			require.JSONEq(t, `{"was": {"doubled": 4}, "by": "node_finish"}`, string(done.Result),
				"node_enter made n 2, the handler doubled it, node_finish wrapped the result")
			require.JSONEq(t, `{"n": 1, "big": 9007199254740993}`, string(done.Kwargs), "the node's kwargs are the event's, as sent")

			noHookRows(t, b.log, node)
			order, a := logged(t, done)
			require.Equal(t, []string{"node_enter", "node_finish"}, order, "each hook once, in order")
			require.Equal(t, map[string]any{"nodeId": node, "requestId": res.RequestID, "fullName": "events.Hooked", "attempt": float64(1),
				"eventId": res.EventID, "kwargs": map[string]any{"n": float64(1), "big": "9007199254740993"}, "result": nil, "error": nil}, a["node_enter"][0],
				"kwargs as the handler gets them: an integer past 2^53 is an exact BigInt (JSON.stringify writes it as a string)")
			require.Equal(t, map[string]any{"requestId": res.RequestID, "parentNodeId": "", "sender": "hooked", "eventType": "events.NormalType"}, a["node_enter"][1])
			require.Equal(t, map[string]any{"doubled": float64(4)}, a["node_finish"][0]["result"], "node_finish sees the handler's result")
			require.Equal(t, "hooked", a["node_finish"][1]["sender"], "parentData is fresh for each hook")

			got := sigs.of(res.RequestID)
			require.Equal(t, []string{"pre_prepare_run_pipeline", "post_prepare_run_pipeline", "node_enter", "node_finish"}, types(got))
			require.Equal(t, map[string]any{"pipeline": res.RequestID, "root_pipeline_data": map[string]any{"sender": "hooked", "eventType": "events.NormalType",
				"kwargs": map[string]any{"n": int64(1), "big": int64(9007199254740993)}}, "root_pipeline_context": map[string]any{}, "subprocess_context": map[string]any{}}, got[0].Data)
			require.Equal(t, map[string]any{"root_pipeline_id": res.RequestID, "node_id": node, "ex_data": "", "attempt": int64(1)}, got[2].Data)
			require.Equal(t, map[string]any{"root_pipeline_id": res.RequestID, "node_id": node, "attempt": int64(1)}, got[3].Data)
			require.Equal(t, "events.Hooked", got[2].Element)
			require.Equal(t, node, got[3].NodeID)
		})
	}
}

// TestHooksOfFailures: ctx.fail runs node_execute_fail, a throw or a timeout
// node_execute_exception, after node_enter; each may change the saved error's message (not its
// code). Their signals follow node_enter's, with the seed's data.
func TestHooksOfFailures(t *testing.T) {
	t.Parallel()
	sigs := &signalLog{}
	b := hookBundle(t, sigs, false)
	cases := []struct {
		sender, mode, hook, code, message string
	}{
		{"hooked", "fail", "node_execute_fail", vocab.CodeFailed, "hooked: nope"},
		{"hooked", "throw", "node_execute_exception", "js_error", "hooked: "},
		{"slow", "loop", "node_execute_exception", "timeout", "hooked: "},
	}
	for _, tc := range cases {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			res := b.send(tc.sender, map[string]any{"mode": tc.mode})
			node := res.NodeIDs[0]
			rows := b.awaitStage(node, logstore.StageDeadLettered, 1)
			last := rows[len(rows)-1]
			require.NotNil(t, last.Error)
			require.Equal(t, tc.code, last.Error.Code, "a hook cannot change the error's code")
			require.True(t, strings.HasPrefix(last.Error.Message, tc.message), "the hook's message is saved: %q", last.Error.Message)
			noHookRows(t, b.log, node)
			order, a := logged(t, last)
			require.Equal(t, []string{"node_enter", tc.hook}, order)
			require.Equal(t, tc.code, a[tc.hook][0]["error"].(map[string]any)["code"])
			require.Nil(t, a[tc.hook][0]["result"])

			got := sigs.of(res.RequestID)
			require.Equal(t, []string{"pre_prepare_run_pipeline", "post_prepare_run_pipeline", "node_enter", tc.hook}, types(got))
			want := map[string]any{"root_pipeline_id": res.RequestID, "node_id": node, "attempt": int64(1)}
			if tc.hook == "node_execute_exception" {
				require.NotEmpty(t, got[3].Data["ex_data"], "an exception's signal carries ex_data")
				want["ex_data"] = got[3].Data["ex_data"]
			}
			require.Equal(t, want, got[3].Data)
		})
	}
}

// TestHookFailuresChangeNothing: a hook that throws or times out is a failed row of its own
// under the node, its changes are dropped, and the node's outcome is the handler's.
func TestHookFailuresChangeNothing(t *testing.T) {
	t.Parallel()
	b := hookBundle(t, &signalLog{}, false)
	node := b.send("bad", map[string]any{"n": int64(1)}).NodeIDs[0]
	rows := b.awaitStage(node, logstore.StageDone, 1)
	require.JSONEq(t, `"mine"`, string(rows[len(rows)-1].Result), "node_finish timed out: its change is not saved")
	require.Nil(t, rows[len(rows)-1].Error)
	hooks := hookRows(t, b.log, node, 2)
	require.Equal(t, []string{"node_enter:fail@1", "node_finish:fail@1"}, hookNames(hooks))
	require.Equal(t, logstore.StageFailed, hooks[0].Stage)
	require.Equal(t, "js_error", hooks[0].Error.Code)
	require.Contains(t, hooks[0].Error.Message, "enter broke")
	require.Contains(t, hooks[0].Error.Stack, "events/BadHooks/index.js:2", "the hook's stack points at its line")
	require.Equal(t, "timeout", hooks[1].Error.Code)
}

// TestIgnoreFailure: with ignoreFailure a ctx.fail ends the node success/done at once, whatever
// its retry policy, with the reason kept as its error; node_execute_fail does not run,
// node_finish does (and cannot turn the ignored failure into a result). A throw is not ignored.
func TestIgnoreFailure(t *testing.T) {
	t.Parallel()
	sigs := &signalLog{}
	b := hookBundle(t, sigs, false)
	res := b.send("ignoring", map[string]any{"mode": "fail"})
	node := res.NodeIDs[0]
	rows := b.awaitStage(node, logstore.StageDone, 1)
	require.Equal(t, []string{"waiting/queued@1", "running/running@1", "success/done@1"}, stages(rows))
	last := rows[len(rows)-1]
	require.Equal(t, &logstore.RowError{Code: vocab.CodeFailed, Message: "nope"}, last.Error)
	require.Empty(t, last.Result)
	noHookRows(t, b.log, node)
	order, a := logged(t, last)
	require.Equal(t, []string{"node_enter", "node_finish"}, order)
	require.Equal(t, map[string]any{"code": vocab.CodeFailed, "message": "nope"}, a["node_finish"][0]["error"])
	require.Equal(t, []string{"pre_prepare_run_pipeline", "post_prepare_run_pipeline", "node_enter", "node_finish"}, types(sigs.of(res.RequestID)))

	thrown := b.send("ignoring", map[string]any{"mode": "throw"}).NodeIDs[0]
	rows = b.awaitStage(thrown, logstore.StageRetryScheduled, 1)
	require.Equal(t, logstore.StatusWaiting, rows[len(rows)-1].Status, "a throw is retried by the policy, not ignored")
}

// TestNoHooksWithoutNeedRunHook: a listener without needRunHook runs none of the hooks it
// exports, but its signals are emitted all the same (signals are app-wide).
func TestNoHooksWithoutNeedRunHook(t *testing.T) {
	t.Parallel()
	sigs := &signalLog{}
	b := hookBundle(t, sigs, false)
	res := b.send("plain", map[string]any{"n": int64(1)})
	rows := b.awaitStage(res.NodeIDs[0], logstore.StageDone, 1)
	require.JSONEq(t, `{"doubled": 2}`, string(rows[len(rows)-1].Result))
	for _, r := range b.log.Sink.All() {
		require.NotEqual(t, logstore.KindHook, r.Kind, "no hook ran: %s", r.NodeID)
	}
	require.Equal(t, []string{"pre_prepare_run_pipeline", "post_prepare_run_pipeline", "node_enter", "node_finish"}, types(sigs.of(res.RequestID)))
}

// TestCallbackHooks: a callback runs pre_callback, then (a successful one ending the node)
// node_finish, whose change of the result is saved, then post_callback; the read-only callback
// hooks change nothing. Signals: pre_callback, node_finish, post_callback with {node_id,
// version, data}.
func TestCallbackHooks(t *testing.T) {
	t.Parallel()
	sigs := &signalLog{}
	b := hookBundle(t, sigs, false)
	res := b.send("hooked", map[string]any{"mode": "wait"})
	node := res.NodeIDs[0]
	waiting := b.awaitStage(node, logstore.StageAwaitingCallback, 1)
	order, _ := logged(t, waiting[len(waiting)-1])
	require.Equal(t, []string{"node_enter"}, order, "a node waiting for its callback has not finished")

	cb, err := b.eng.Callback(b.ctx, node, map[string]any{"paid": true})
	require.NoError(t, err)
	require.Equal(t, logstore.StatusSuccess, cb.Status)
	rows := b.awaitStage(node, logstore.StageCallback, 1)
	require.JSONEq(t, `{"was": {"paid": true}, "by": "node_finish"}`, string(rows[len(rows)-1].Result),
		"pre_callback is read-only; node_finish's change is saved")
	// Hooks of a callback, an operation rather than the delivery path, have rows of their own.
	hooks := hookRows(t, b.log, node, 3)
	require.Equal(t, []string{"pre_callback:success@1", "node_finish:success@1", "post_callback:success@1"}, hookNames(hooks))
	require.Equal(t, node+".pre_callback", hooks[0].NodeID)
	require.Equal(t, "events.Hooked.pre_callback", hooks[0].Sender)
	require.Equal(t, res.RequestID, hooks[0].RequestID)
	data, parent := args(t, hooks[0])
	require.Equal(t, map[string]any{"paid": true}, data["callbackData"])
	require.Equal(t, map[string]any{"requestId": res.RequestID, "parentNodeId": "", "sender": "hooked", "eventType": "events.NormalType"}, parent)
	data, _ = args(t, hooks[2])
	require.Equal(t, "success", data["status"])

	got := sigs.of(res.RequestID)
	require.Equal(t, []string{"pre_prepare_run_pipeline", "post_prepare_run_pipeline", "node_enter", "pre_callback", "node_finish", "post_callback"}, types(got))
	require.Equal(t, map[string]any{"node_id": node, "version": int64(1), "data": map[string]any{"paid": true}}, got[3].Data)
	require.Equal(t, map[string]any{"node_id": node, "version": int64(1), "data": map[string]any{"paid": true}}, got[5].Data)

	// A callback reporting an error does not finish the node: no node_finish.
	res = b.send("hooked", map[string]any{"mode": "wait"})
	node = res.NodeIDs[0]
	b.awaitStage(node, logstore.StageAwaitingCallback, 1)
	_, err = b.eng.Callback(b.ctx, node, map[string]any{"error": "declined"})
	require.NoError(t, err)
	require.Equal(t, []string{"pre_callback:success@1", "post_callback:success@1"}, hookNames(hookRows(t, b.log, node, 2)))
	require.Equal(t, []string{"pre_prepare_run_pipeline", "post_prepare_run_pipeline", "node_enter", "pre_callback", "post_callback"}, types(sigs.of(res.RequestID)))
}

// TestNodeHook: the one function node operations announce their moments with runs a read-only
// hook (its changes dropped), writes its row under the node, and emits the signal; unknown nodes
// and hook nodes are refused.
func TestNodeHook(t *testing.T) {
	t.Parallel()
	sigs := &signalLog{}
	b := hookBundle(t, sigs, false)
	res := b.send("hooked", map[string]any{"n": int64(1)})
	node := res.NodeIDs[0]
	b.awaitStage(node, logstore.StageDone, 1)

	data, err := b.eng.NodeHook(b.ctx, node, lifecycle.PreRetryNode, map[string]any{"data": map[string]any{}})
	require.NoError(t, err)
	require.Equal(t, map[string]any{"n": int64(1)}, data["kwargs"], "pre_retry_node is read-only: its change is dropped")
	hooks := hookRows(t, b.log, node, 1)
	require.Equal(t, []string{"pre_retry_node:success@1"}, hookNames(hooks))
	require.JSONEq(t, `1`, string(hooks[0].Result), "the hook's return value is recorded, and used by nothing")
	got := sigs.of(res.RequestID)
	require.Equal(t, lifecycle.PreRetryNode, got[len(got)-1].Type)
	require.Equal(t, map[string]any{"node_id": node, "root_pipeline_id": res.RequestID, "attempt": int64(1), "data": map[string]any{}}, got[len(got)-1].Data)

	// A moment the listener has no hook for emits its signal only.
	_, err = b.eng.NodeHook(b.ctx, node, lifecycle.PostRetryNode, nil)
	require.NoError(t, err)
	got = sigs.of(res.RequestID)
	require.Equal(t, lifecycle.PostRetryNode, got[len(got)-1].Type)

	_, err = b.eng.NodeHook(b.ctx, "node_nope", lifecycle.PreRetryNode, nil)
	require.ErrorIs(t, err, engine.ErrNotFound)
	require.NoError(t, b.log.Writer.Flush(b.ctx))
	_, err = b.eng.NodeHook(b.ctx, node+".pre_retry_node", lifecycle.PreRetryNode, nil)
	require.ErrorIs(t, err, engine.ErrConflict)
}

// TestHookWarnings: `trellis check` warns, with positions, about a hook exported without
// needRunHook (at the export) and needRunHook with no hook exported (at the field); the app
// still loads.
func TestHookWarnings(t *testing.T) {
	t.Parallel()
	dir := parttest.WriteApp(t, "warn", map[string]string{
		"events/Forgot/e.json":   `{"title": "Forgot", "type": "events.NormalType", "sender": "a"}`,
		"events/Forgot/index.js": "exports.handle = function () {};\n\nexports.node_enter = function (data) {};\n",
		"events/Empty/e.json":    "{\"title\": \"Empty\", \"type\": \"events.NormalType\", \"sender\": \"a\",\n  \"needRunHook\": true}",
		"events/Empty/index.js":  "exports.handle = function () {};\n",
		"events/Fine/e.json":     `{"title": "Fine", "type": "events.NormalType", "sender": "a", "needRunHook": true}`,
		"events/Fine/index.js":   "exports.handle = function () {};\nexports.node_finish = function () {};\n",
	})
	problems, warnings := registry.CheckAll(host.RegistryOptions(dir))
	require.Empty(t, problems)
	require.Len(t, warnings, 2, "%v", warnings)
	byElement := map[string]registry.Problem{}
	for _, w := range warnings {
		require.Equal(t, registry.SeverityWarning, w.Severity)
		byElement[w.Element] = w
	}
	forgot := byElement["events.Forgot"]
	require.Equal(t, "events/Forgot/index.js", forgot.File)
	require.Equal(t, 3, forgot.Line)
	require.Equal(t, 9, forgot.Column)
	require.Contains(t, forgot.Message, "node_enter")
	empty := byElement["events.Empty"]
	require.Equal(t, "events/Empty/e.json", empty.File)
	require.Equal(t, 2, empty.Line)
	require.Contains(t, empty.Message, "needRunHook")
	_, err := registry.Load(host.RegistryOptions(dir))
	require.NoError(t, err, "warnings do not stop a load")
}
