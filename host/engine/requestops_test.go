package engine_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/internal/parttest"
	"github.com/trellis-run/trellis/host/lifecycle"
	"github.com/trellis-run/trellis/host/tasks"
	"github.com/trellis-run/trellis/host/timers"
	"github.com/trellis-run/trellis/host/timers/localtimers"
	"github.com/trellis-run/trellis/host/timers/recurring/locallock"
	"github.com/trellis-run/trellis/logstore"
)

// taskOpsApp is opsApp with a task template: timer tasks made in a request are its task nodes.
func taskOpsApp() map[string]string {
	app := map[string]string{
		"tasks/Later/e.json":   `{"title": "Later", "type": "tasks.NormalType", "funcName": "run"}`,
		"tasks/Later/index.js": `exports.run = function (argDict) { return argDict.n; };`,
	}
	for k, v := range opsApp {
		app[k] = v
	}
	return app
}

// taskCenter starts a serving task center beside b's engine, on an embedded task store, writing
// to b's log: the host's pair of event center and task center.
func taskCenter(t *testing.T, b *bundle) *tasks.Center {
	t.Helper()
	dir := t.TempDir()
	store, err := localtimers.Open(filepath.Join(dir, "timers.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	coord, err := locallock.Open(filepath.Join(dir, "ticks.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = coord.Close() })
	c, err := tasks.New(tasks.Options{Store: store, Executor: parttest.NewVM(t, b.probe, b.snap.Load()), Log: b.rec,
		Snapshot: b.snap.Load, Location: func() *time.Location { return time.UTC }, Coordinator: coord, Serve: true})
	require.NoError(t, err)
	require.NoError(t, c.Start(b.ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), parttest.WaitLimit)
		defer cancel()
		_ = c.Stop(ctx)
	})
	return c
}

// timerTask makes a timer task of tasks.Later in requestID, as a handler of parent would.
func timerTask(t *testing.T, b *bundle, c *tasks.Center, requestID, parent string, start time.Time) map[string]any {
	t.Helper()
	rec, err := c.CreateTimerTask(b.ctx, tasks.CreateRequest{FullName: "tasks.Later", FuncName: "run", TaskType: "tasks.NormalType",
		StartTime: start, ArgDict: map[string]any{"n": int64(7)}, Caller: tasks.Caller{RequestID: requestID, NodeID: parent}})
	require.NoError(t, err)
	return rec
}

// TestRequestOpsReachTaskNodes: a request's pause, resume and revoke reach its timer tasks (the
// task center, Options.RequestTasks) as they reach its event nodes: a task due while its request
// is paused — made before the pause or after it — does not run, and runs after the resume; a
// revoke ends the waiting task as fail/revoked, and one made later. A request whose only waiting
// node is a task is running, so it can be paused.
func TestRequestOpsReachTaskNodes(t *testing.T) {
	t.Parallel()
	var center *tasks.Center
	sigs := &signalLog{}
	b := setup(t, taskOpsApp(), func(o *engine.Options) {
		o.Signals = sigs
		o.RequestTasks = func(ctx context.Context, op, requestID string) ([]string, error) {
			return center.RequestOp(ctx, op, requestID)
		}
	})
	center = taskCenter(t, b)
	ctx := b.ctx

	res := b.send("held", map[string]any{})
	parent := res.NodeIDs[0]
	b.probe.AwaitHit(t, parent)
	b.awaitStage(parent, logstore.StageRunning, 1)
	due := time.Now().Add(500 * time.Millisecond)
	before := timerTask(t, b, center, res.RequestID, parent, due)["taskId"].(string)
	p, err := b.eng.PauseRequest(ctx, res.RequestID)
	require.NoError(t, err)
	require.Equal(t, []string{before}, p.Nodes, "the waiting task; not the running handler")
	after := timerTask(t, b, center, res.RequestID, parent, time.Now())
	require.Equal(t, timers.StatusPaused, after["status"], "made by the running handler after the pause: paused")
	b.probe.Open(parent)
	b.awaitStage(parent, logstore.StageDone, 1)
	time.Sleep(time.Until(due) + holdFor)
	for _, id := range []string{before, after["taskId"].(string)} {
		last := latest(b, id)
		require.Equal(t, "waiting/paused", last.Status+"/"+last.Stage, "due in a paused request: %s does not run", id)
	}
	_, err = center.NodeOp(ctx, "resume", before, nil)
	require.ErrorIs(t, err, tasks.ErrConflict, "a task paused with its request resumes with it")

	r, err := b.eng.ResumeRequest(ctx, res.RequestID)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{before, after["taskId"].(string)}, r.Nodes)
	for _, id := range []string{before, after["taskId"].(string)} {
		b.awaitStage(id, logstore.StageDone, 0)
	}
	_, err = b.eng.ResumeRequest(ctx, res.RequestID)
	conflictNaming(t, err, "finished")
	require.Equal(t, []string{"pre_pause_pipeline", "post_pause_pipeline", "pre_resume_pipeline", "post_resume_pipeline"},
		pipelineOps(sigs.of(res.RequestID)), "the request's signals once, for event and task nodes alike")

	// A request whose one waiting node is a timer task: running, so it can be revoked; the task
	// ends as revoked, and so does one made in it later.
	lone := timerTask(t, b, center, "req_lone", "", time.Now().Add(time.Hour))["taskId"].(string)
	v, err := b.eng.RevokeRequest(ctx, "req_lone")
	require.NoError(t, err)
	require.Equal(t, engine.RequestOpResult{RequestID: "req_lone", State: "revoked", Nodes: []string{lone}}, v)
	last := latest(b, lone)
	require.Equal(t, "fail/revoked", last.Status+"/"+last.Stage)
	require.Equal(t, "revoked", last.Error.Code)
	late := timerTask(t, b, center, "req_lone", "", time.Now())
	require.Equal(t, timers.StatusFail, late["status"])
	_, err = b.eng.PauseRequest(ctx, "req_lone")
	conflictNaming(t, err, "revoked")
}

// pipelineOps is the request operations' signals among sigs.
func pipelineOps(sigs []lifecycle.Signal) []string {
	var out []string
	for _, s := range opTypes(sigs) {
		if strings.HasSuffix(s, "_pipeline") && !strings.Contains(s, "prepare") {
			out = append(out, s)
		}
	}
	return out
}

// TestRequestOpStopsWhenTaskNodesFail: when the task side of an operation fails, the operation
// fails and the event nodes are not touched (it can be run again: the task store repeats it
// harmlessly).
func TestRequestOpStopsWhenTaskNodesFail(t *testing.T) {
	t.Parallel()
	down := errors.New("task store down")
	b := setup(t, opsApp, func(o *engine.Options) {
		o.RequestTasks = func(context.Context, string, string) ([]string, error) { return nil, down }
	})
	res := b.send("flaky", map[string]any{})
	node := res.NodeIDs[0]
	b.awaitStage(node, logstore.StageRetryScheduled, 1)
	_, err := b.eng.PauseRequest(b.ctx, res.RequestID)
	require.ErrorIs(t, err, down)
	b.awaitStage(node, logstore.StageDone, 2) // not paused: its retry ran
}
