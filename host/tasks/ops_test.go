package tasks_test

import (
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/tasks"
	"github.com/trellis-run/trellis/host/timers"
	"github.com/trellis-run/trellis/host/timers/redistimers"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

// opsHooks are the hooks of the node operations; each logs what it saw.
var opsHooks = []string{"pre_pause_node", "post_pause_node", "pre_resume_node", "post_resume_node", "pre_skip_node",
	"post_skip_node", "pre_forced_fail_activity", "post_forced_fail_activity", "pre_retry_node", "post_retry_node"}

func opsApp() map[string]string {
	js := `
exports.run = function (argDict, ctx) {
	if (argDict.mode === "fail") ctx.fail("nope");
	if (argDict.mode === "loop") for (;;) {}
	return {doubled: argDict.n * 2, attempt: ctx.attempt};
};
`
	for _, h := range opsHooks {
		js += "exports." + h + " = function (data) { console.log(JSON.stringify(data)); data.argDict = 'changed'; };\n"
	}
	return map[string]string{
		"tasks/Ops/e.json":   `{"title": "Ops", "type": "tasks.NormalType", "funcName": "run", "needRunHook": true, "timeout": "60s"}`,
		"tasks/Ops/index.js": js,
	}
}

func testRedisURL() string { return os.Getenv("TRELLIS_TEST_REDIS") }

// redisStore is a task store on the test Redis under a prefix of its own.
func redisStore(t *testing.T) timers.Store {
	t.Helper()
	opts, err := redis.ParseURL(testRedisURL())
	require.NoError(t, err)
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	s := redistimers.New(c, "trellis:taskops:"+vocab.NewID("")+":")
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func opsSetup(t *testing.T, sigs *signalLog, onRedis bool) *bundle {
	t.Helper()
	b := setup(t, opsApp(), func(o *tasks.Options) {
		o.Signals = sigs
		if onRedis {
			o.Store = redisStore(t)
		}
	})
	return b
}

func (b *bundle) op(op, id string, data any) tasks.OpResult {
	b.t.Helper()
	res, err := b.center.NodeOp(b.ctx, op, id, data)
	require.NoError(b.t, err, "%s of %s", op, id)
	return res
}

func (b *bundle) refused(op, id, status string) {
	b.t.Helper()
	_, err := b.center.NodeOp(b.ctx, op, id, nil)
	require.ErrorIs(b.t, err, tasks.ErrConflict, "%s of a %s task", op, status)
	require.Equal(b.t, vocab.CodeConflict, vocab.CodeOf(err))
	require.ErrorContains(b.t, err, "it is "+status)
}

// opOrder is what the sink recorded of an operation, in order: its hooks' rows (by hook name)
// and the node's own rows (status/stage).
func (b *bundle) opOrder(id string) []string {
	var out []string
	for _, r := range b.log.Sink.All() {
		switch {
		case r.Kind == logstore.KindHook && r.ParentNodeID == id:
			out = append(out, r.EventType)
		case r.NodeID == id:
			out = append(out, r.Status+"/"+r.Stage)
		}
	}
	return out
}

// TestTaskPauseResume: a paused task does not run when due, also across a restart; resumed
// after its start time it runs at once. Each operation runs its hooks around its row and emits
// its signals; refused states answer 409 naming the status.
func TestTaskPauseResume(t *testing.T) {
	t.Parallel()
	sigs := &signalLog{}
	b := opsSetup(t, sigs, false)
	start := time.Now().Add(700 * time.Millisecond)
	id := b.create("tasks.Ops", "run", start, map[string]any{"n": int64(4)})["taskId"].(string)
	b.refused("resume", id, timers.StatusWaiting)
	res := b.op("pause", id, nil)
	require.Equal(t, tasks.OpResult{NodeID: id, Status: "waiting", Stage: "paused", Attempt: 1, TaskID: id, TaskStatus: "paused"}, res)
	b.refused("pause", id, timers.StatusPaused)
	b.refused("retry", id, timers.StatusPaused)
	_, err := b.center.NodeOp(b.ctx, "pause", id, map[string]any{"x": 1})
	require.ErrorIs(t, err, tasks.ErrInvalidArgument, "pause takes no data")
	_, err = b.center.NodeOp(b.ctx, "explode", id, nil)
	require.ErrorIs(t, err, tasks.ErrInvalidArgument)

	time.Sleep(time.Until(start) + 300*time.Millisecond) // due, and paused: it must not run
	b.restart("host2")
	time.Sleep(300 * time.Millisecond)
	rec := b.awaitStatus(id, timers.StatusPaused)
	require.Equal(t, int64(0), rec["attempt"], "never ran")
	require.Equal(t, []string{"waiting/scheduled", "pre_pause_node", "waiting/paused", "post_pause_node"}, b.opOrder(id))

	res = b.op("resume", id, nil)
	require.Equal(t, "waiting", res.Status)
	require.Equal(t, "scheduled", res.Stage)
	rows := b.awaitStage(id, logstore.StageDone)
	require.JSONEq(t, `{"doubled": 8, "attempt": 1}`, string(rows[len(rows)-1].Result))
	require.Equal(t, []string{"waiting/scheduled", "pre_pause_node", "waiting/paused", "post_pause_node",
		"pre_resume_node", "waiting/scheduled", "post_resume_node", "running/running", "success/done"}, b.opOrder(id))
	require.Equal(t, []string{"pre_pause_node", "post_pause_node", "pre_resume_node", "post_resume_node", "node_enter", "node_finish"},
		sigTypes(b.signals(sigs, id, 6)))
	a, _ := hookRow(t, b, id, "pre_pause_node")
	require.Equal(t, id, a[0]["taskId"], "the hook gets the task's data")
	// The done row is written before the record is finished in the store: wait for the record.
	b.awaitStatus(id, timers.StatusSuccess)
	b.refused("pause", id, timers.StatusSuccess)
	b.refused("resume", id, timers.StatusSuccess)
	b.refused("forcedFail", id, timers.StatusSuccess)

	_, err = b.center.NodeOp(b.ctx, "pause", "task_unknown", nil)
	require.ErrorIs(t, err, timers.ErrNotFound)
	ok, err := b.center.IsTaskNode(b.ctx, id)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = b.center.IsTaskNode(b.ctx, "st_event_node")
	require.NoError(t, err)
	require.False(t, ok)
}

// TestTaskSkip: a waiting, paused or failed task ends success/skipped and never runs.
func TestTaskSkip(t *testing.T) {
	t.Parallel()
	sigs := &signalLog{}
	b := opsSetup(t, sigs, false)
	w := b.create("tasks.Ops", "run", time.Now().Add(time.Hour), map[string]any{"n": int64(1)})["taskId"].(string)
	res := b.op("skip", w, nil)
	require.Equal(t, tasks.OpResult{NodeID: w, Status: "success", Stage: "skipped", Attempt: 1, TaskID: w, TaskStatus: "success"}, res)
	b.refused("skip", w, timers.StatusSuccess)
	require.Equal(t, []string{"waiting/scheduled", "pre_skip_node", "success/skipped", "post_skip_node"}, b.opOrder(w))
	require.Equal(t, []string{"pre_skip_node", "post_skip_node"}, sigTypes(b.signals(sigs, w, 2)))

	p := b.create("tasks.Ops", "run", time.Now().Add(time.Hour), map[string]any{"n": int64(1)})["taskId"].(string)
	b.op("pause", p, nil)
	require.Equal(t, "skipped", b.op("skip", p, nil).Stage)

	f := b.createNow("tasks.Ops", "run", map[string]any{"mode": "fail"})
	b.awaitStage(f, logstore.StageFailed)
	b.awaitStatus(f, timers.StatusFail)
	res = b.op("skip", f, nil)
	require.Equal(t, "success/skipped", res.Status+"/"+res.Stage)
	require.Equal(t, 1, res.Attempt)
	rec := b.awaitStatus(f, timers.StatusSuccess)
	require.NotNil(t, rec["error"], "the failed try's error stays")
}

// TestTaskRetryOp: a failed task runs again as its next attempt, with the new argDict given.
func TestTaskRetryOp(t *testing.T) {
	t.Parallel()
	sigs := &signalLog{}
	b := opsSetup(t, sigs, false)
	f := b.createNow("tasks.Ops", "run", map[string]any{"mode": "fail"})
	b.awaitStatus(f, timers.StatusFail)
	_, err := b.center.NodeOp(b.ctx, "retry", f, "not an object")
	require.ErrorIs(t, err, tasks.ErrInvalidArgument)
	res := b.op("retry", f, map[string]any{"n": int64(5)})
	require.Equal(t, tasks.OpResult{NodeID: f, Status: "waiting", Stage: "resent", Attempt: 2, TaskID: f, TaskStatus: "waiting"}, res)
	rows := b.awaitStage(f, logstore.StageDone)
	require.JSONEq(t, `{"doubled": 10, "attempt": 2}`, string(rows[len(rows)-1].Result))
	require.Equal(t, 2, rows[len(rows)-1].Attempt)
	require.Equal(t, []string{"waiting/scheduled", "running/running", "fail/failed", "pre_retry_node", "waiting/resent", "post_retry_node",
		"running/running", "success/done"}, b.opOrder(f))
	got := b.signals(sigs, f, 6)
	require.Equal(t, []string{"node_enter", "node_execute_fail", "pre_retry_node", "post_retry_node", "node_enter", "node_finish"}, sigTypes(got))
	require.Equal(t, map[string]any{"n": int64(5)}, got[2].Data["data"])
	rec := b.awaitStatus(f, timers.StatusSuccess)
	require.Equal(t, map[string]any{"n": int64(5)}, rec["argDict"])
	require.Nil(t, rec["error"])
	b.refused("retry", f, timers.StatusSuccess)
}

// TestTaskForcedFail: a waiting task ends fail/forcedFail and never runs; a running one is
// interrupted on the host running it — here another center (another host, on Redis when
// TRELLIS_TEST_REDIS is set) — and its run records nothing.
func TestTaskForcedFail(t *testing.T) {
	t.Parallel()
	for _, onRedis := range []bool{false, true} {
		t.Run(map[bool]string{false: "embedded", true: "redis"}[onRedis], func(t *testing.T) {
			if onRedis && testRedisURL() == "" {
				t.Skip("TRELLIS_TEST_REDIS is not set")
			}
			sigs := &signalLog{}
			b := opsSetup(t, sigs, onRedis)
			w := b.create("tasks.Ops", "run", time.Now().Add(time.Hour), map[string]any{"n": int64(1)})["taskId"].(string)
			res := b.op("forcedFail", w, "enough")
			require.Equal(t, "fail/forcedFail", res.Status+"/"+res.Stage)
			rec := b.awaitStatus(w, timers.StatusFail)
			require.Equal(t, map[string]any{"code": "forcedFail", "message": "enough", "stack": ""}, rec["error"])
			b.refused("forcedFail", w, timers.StatusFail)

			// The operator's host only reads and writes tasks; b's center runs them.
			o := b.opts
			o.Serve, o.Owner = false, "operator"
			other, err := tasks.New(o)
			require.NoError(t, err)
			require.NoError(t, other.Start(b.ctx))
			r := b.createNow("tasks.Ops", "run", map[string]any{"mode": "loop"})
			b.awaitStage(r, logstore.StageRunning)
			b.awaitStatus(r, timers.StatusRunning)
			b.refused("skip", r, timers.StatusRunning)
			res, err = other.NodeOp(b.ctx, "forcedFail", r, nil)
			require.NoError(t, err)
			require.Equal(t, "fail/forcedFail", res.Status+"/"+res.Stage)
			// The run is cancelled on b's host (the store tells its runner, as for forcedEnd) and
			// writes no outcome.
			time.Sleep(300 * time.Millisecond)
			require.Equal(t, []string{"waiting/scheduled", "running/running", "pre_forced_fail_activity", "fail/forcedFail",
				"post_forced_fail_activity"}, b.opOrder(r))
			rec = b.awaitStatus(r, timers.StatusFail)
			require.Equal(t, "the task was force-failed", rec["error"].(map[string]any)["message"])
			got := b.signals(sigs, r, 3)
			require.Equal(t, []string{"node_enter", "pre_forced_fail_activity", "post_forced_fail_activity"}, sigTypes(got))
			require.Equal(t, int64(1), got[2].Data["old_version"])
			require.Equal(t, int64(1), got[2].Data["new_version"])
		})
	}
}
