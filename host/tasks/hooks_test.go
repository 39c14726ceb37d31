package tasks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/internal/parttest"
	"github.com/trellis-run/trellis/host/lifecycle"
	"github.com/trellis-run/trellis/host/tasks"
	"github.com/trellis-run/trellis/host/timers"
	"github.com/trellis-run/trellis/host/timers/redistimers"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

// taskHookJS is a template whose hooks change what they may: node_enter adds one to argDict.n,
// node_finish wraps the result, the failure hooks prefix the error's message.
const taskHookJS = `
exports.run = function (argDict, ctx) {
	if (argDict.mode === "fail") ctx.fail("nope");
	if (argDict.mode === "throw") throw new Error("boom");
	if (argDict.mode === "loop") for (;;) {}
	return {doubled: argDict.n * 2};
};
exports.node_enter = function (data, parent) { console.log(JSON.stringify([data, parent])); data.argDict.n = (data.argDict.n || 0) + 1; return true; };
exports.node_finish = function (data) { console.log("finishing"); data.result = {was: data.result, by: "node_finish"}; };
exports.node_execute_fail = function (data) { console.log("failing"); data.error.message = "hooked: " + data.error.message; };
exports.node_execute_exception = function (data) { console.log("failing"); data.error.message = "hooked: " + data.error.message; };
exports.pre_forced_fail_activity = function (data) { data.argDict = "changed"; };
`

var taskHookApp = map[string]string{
	"tasks/Hooked/e.json":   `{"title": "Hooked", "type": "tasks.NormalType", "funcName": "run", "needRunHook": true, "timeout": "300ms"}`,
	"tasks/Hooked/index.js": taskHookJS,
	"tasks/Ignoring/e.json": `{"title": "Ignoring", "type": "tasks.NormalType", "funcName": "run", "needRunHook": true, "ignoreFailure": true,
		"retry": {"policy": "default", "interval": "1s", "maxAttempts": 3}}`,
	"tasks/Ignoring/index.js": taskHookJS,
	"tasks/Plain/e.json":      `{"title": "Plain", "type": "tasks.NormalType", "funcName": "run"}`,
	"tasks/Plain/index.js":    taskHookJS,
}

type signalLog struct {
	mu  sync.Mutex
	all []lifecycle.Signal
}

func (s *signalLog) Emit(_ context.Context, sig lifecycle.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all = append(s.all, sig)
}

func (s *signalLog) of(nodeID string) []lifecycle.Signal {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []lifecycle.Signal
	for _, sig := range s.all {
		if sig.NodeID == nodeID {
			out = append(out, sig)
		}
	}
	return out
}

func sigTypes(sigs []lifecycle.Signal) []string {
	out := make([]string, len(sigs))
	for i, s := range sigs {
		out[i] = string(s.Type)
	}
	return out
}

func taskHookRows(t *testing.T, b *bundle, node string, n int) []string {
	t.Helper()
	rows := b.log.Sink.Await(t, fmt.Sprintf("%d hook rows of %s", n, node), func(rows []logstore.Row) bool {
		c := 0
		for _, r := range rows {
			if r.Kind == logstore.KindHook && r.ParentNodeID == node {
				c++
			}
		}
		return c >= n
	})
	var out []string
	for _, r := range rows {
		if r.Kind == logstore.KindHook && r.ParentNodeID == node {
			out = append(out, r.EventType+":"+r.Status)
		}
	}
	return out
}

func noTaskHookRows(t *testing.T, b *bundle, node string) {
	t.Helper()
	for _, r := range b.log.Sink.All() {
		require.False(t, r.Kind == logstore.KindHook && r.ParentNodeID == node, "hook row %s: hooks that succeed in a run have none", r.NodeID)
	}
}

func hookRow(t *testing.T, b *bundle, node, hook string) ([]map[string]any, logstore.Row) {
	t.Helper()
	for _, r := range b.log.Sink.All() {
		if r.Kind == logstore.KindHook && r.NodeID == node+"."+hook {
			var a []map[string]any
			require.NoError(t, json.Unmarshal(r.Kwargs, &a))
			return a, r
		}
	}
	t.Fatalf("no %s row under %s", hook, node)
	return nil, logstore.Row{}
}

func hookSetup(t *testing.T, sigs *signalLog, onRedis bool) *bundle {
	t.Helper()
	return setup(t, taskHookApp, func(o *tasks.Options) {
		o.Signals = sigs
		if onRedis {
			url := os.Getenv("TRELLIS_TEST_REDIS")
			if url == "" {
				t.Skip("TRELLIS_TEST_REDIS is not set")
			}
			opts, err := redis.ParseURL(url)
			require.NoError(t, err)
			c := redis.NewClient(opts)
			t.Cleanup(func() { _ = c.Close() })
			s := redistimers.New(c, "trellis:taskhooks:"+vocab.NewID("")+":")
			t.Cleanup(func() { _ = s.Close() })
			o.Store = s
		}
	})
}

// TestTaskHooksOfASuccessfulRun: node_enter's change of data.argDict is what the function
// receives, node_finish's change of data.result is what the record and the log save; each once,
// in order, as a hook row under the task's node, with the documented data; signals node_enter,
// node_finish. With the embedded task store and with Redis.
func TestTaskHooksOfASuccessfulRun(t *testing.T) {
	t.Parallel()
	for _, onRedis := range []bool{false, true} {
		t.Run(map[bool]string{false: "embedded", true: "redis"}[onRedis], func(t *testing.T) {
			t.Parallel()
			sigs := &signalLog{}
			b := hookSetup(t, sigs, onRedis)
			id := b.createNow("tasks.Hooked", "run", map[string]any{"n": int64(1)})
			rows := b.awaitStage(id, logstore.StageDone)
			require.JSONEq(t, `{"was": {"doubled": 4}, "by": "node_finish"}`, string(rows[len(rows)-1].Result))
			rec := b.awaitStatus(id, timers.StatusSuccess)
			require.Equal(t, map[string]any{"was": map[string]any{"doubled": int64(4)}, "by": "node_finish"}, rec["result"])
			require.Equal(t, map[string]any{"n": int64(1)}, rec["argDict"], "the record keeps the argDict it was made with")
			noTaskHookRows(t, b, id)
			var logs []struct{ Message string }
			require.NoError(t, json.Unmarshal(rows[len(rows)-1].Logs, &logs))
			require.Len(t, logs, 2, "each hook once, in order, its output in the run's row")
			require.Equal(t, "[node_finish] finishing", logs[1].Message)
			text, ok := strings.CutPrefix(logs[0].Message, "[node_enter] ")
			require.True(t, ok, logs[0].Message)
			var a []map[string]any
			require.NoError(t, json.Unmarshal([]byte(text), &a))
			require.Equal(t, map[string]any{"taskId": id, "nodeId": id, "requestId": rows[0].RequestID, "fullName": "tasks.Hooked", "funcName": "run",
				"attempt": float64(1), "argDict": map[string]any{"n": float64(1)}, "result": nil, "error": nil}, a[0])
			require.Equal(t, map[string]any{"requestId": rows[0].RequestID, "taskType": "tasks.NormalType"}, a[1])
			got := b.signals(sigs, id, 2)
			require.Equal(t, []string{"node_enter", "node_finish"}, sigTypes(got))
			require.Equal(t, map[string]any{"node_id": id, "root_pipeline_id": rows[0].RequestID, "attempt": int64(1), "ex_data": ""}, got[0].Data)
			require.Equal(t, "tasks.Hooked", got[1].Element)
		})
	}
}

func (b *bundle) signals(sigs *signalLog, id string, n int) []lifecycle.Signal {
	b.t.Helper()
	var got []lifecycle.Signal
	require.Eventually(b.t, func() bool { got = sigs.of(id); return len(got) >= n }, parttest.WaitLimit, 5*time.Millisecond, "signals of %s", id)
	return got
}

// TestTaskHooksOfFailures: ctx.fail runs node_execute_fail, a throw or a timeout
// node_execute_exception; either may change the saved message, never the code.
func TestTaskHooksOfFailures(t *testing.T) {
	t.Parallel()
	sigs := &signalLog{}
	b := hookSetup(t, sigs, false)
	for _, tc := range []struct{ mode, hook, code string }{
		{"fail", "node_execute_fail", vocab.CodeFailed},
		{"throw", "node_execute_exception", "js_error"},
		{"loop", "node_execute_exception", "timeout"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			id := b.createNow("tasks.Hooked", "run", map[string]any{"mode": tc.mode})
			rows := b.awaitStage(id, logstore.StageFailed)
			last := rows[len(rows)-1]
			require.Equal(t, tc.code, last.Error.Code)
			require.True(t, strings.HasPrefix(last.Error.Message, "hooked: "), last.Error.Message)
			rec := b.awaitStatus(id, timers.StatusFail)
			require.True(t, strings.HasPrefix(rec["error"].(map[string]any)["message"].(string), "hooked: "), "the record saves the hook's message too")
			noTaskHookRows(t, b, id)
			require.Contains(t, string(last.Logs), "["+tc.hook+"]")
			require.Equal(t, []string{"node_enter", tc.hook}, sigTypes(b.signals(sigs, id, 2)))
		})
	}
}

// TestTaskIgnoreFailure: with ignoreFailure a ctx.fail ends the run as success at once (no retry),
// the log row keeping the reason; node_finish runs, node_execute_fail does not. Without
// needRunHook no hook runs but the signals are emitted.
func TestTaskIgnoreFailure(t *testing.T) {
	t.Parallel()
	sigs := &signalLog{}
	b := hookSetup(t, sigs, false)
	id := b.createNow("tasks.Ignoring", "run", map[string]any{"mode": "fail"})
	rows := b.awaitStage(id, logstore.StageDone)
	require.Equal(t, []string{"waiting/scheduled", "running/running", "success/done"}, stages(rows))
	require.Equal(t, &logstore.RowError{Code: vocab.CodeFailed, Message: "nope"}, rows[len(rows)-1].Error)
	b.awaitStatus(id, timers.StatusSuccess)
	noTaskHookRows(t, b, id)
	require.Contains(t, string(rows[len(rows)-1].Logs), "[node_finish] finishing", "node_finish ran")
	require.NotContains(t, string(rows[len(rows)-1].Logs), "node_execute_fail")

	plain := b.createNow("tasks.Plain", "run", map[string]any{"n": int64(1)})
	rows = b.awaitStage(plain, logstore.StageDone)
	require.JSONEq(t, `{"doubled": 2}`, string(rows[len(rows)-1].Result))
	require.Equal(t, []string{"node_enter", "node_finish"}, sigTypes(b.signals(sigs, plain, 2)))
	for _, r := range b.log.Sink.All() {
		require.False(t, r.Kind == logstore.KindHook && r.ParentNodeID == plain, "no hook without needRunHook")
	}
}

// TestTaskNodeHook: the function node operations on tasks will announce with runs a read-only
// hook (its change dropped), logs it under the task, and emits the signal.
func TestTaskNodeHook(t *testing.T) {
	t.Parallel()
	sigs := &signalLog{}
	b := hookSetup(t, sigs, false)
	id := b.createNow("tasks.Hooked", "run", map[string]any{"n": int64(1)})
	b.awaitStage(id, logstore.StageDone)
	task, err := b.store.Get(b.ctx, id)
	require.NoError(t, err)
	data := b.center.NodeHook(b.ctx, task, lifecycle.PreForcedFailActivity, map[string]any{"ex_data": "stop"})
	require.Equal(t, map[string]any{"n": int64(1)}, data["argDict"], "read-only: the change is dropped")
	require.Equal(t, "stop", data["ex_data"])
	require.Equal(t, []string{"pre_forced_fail_activity:success"}, taskHookRows(t, b, id, 1), "an operation's hook has a row of its own")
	a, r := hookRow(t, b, id, "pre_forced_fail_activity")
	require.Equal(t, "tasks.Hooked", r.FullName)
	require.Equal(t, task.RequestID, r.RequestID)
	require.Equal(t, "stop", a[0]["ex_data"])
	require.Equal(t, map[string]any{"requestId": task.RequestID, "taskType": "tasks.NormalType"}, a[1])
	got := b.signals(sigs, id, 3)
	require.Equal(t, map[string]any{"node_id": id, "root_pipeline_id": task.RequestID, "attempt": int64(1), "ex_data": "stop"}, got[2].Data)
}
