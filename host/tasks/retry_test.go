package tasks_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/internal/parttest"
	"github.com/trellis-run/trellis/host/retry"
	"github.com/trellis-run/trellis/host/tasks"
	"github.com/trellis-run/trellis/host/timers"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

// retryApp has templates with each retry policy, at the shortest intervals the registry allows
// (any duration above zero), and two without retries.
var retryApp = map[string]string{
	"tasks/Flaky/e.json": `{"title": "Flaky", "type": "tasks.NormalType", "funcName": "run", "argDict": {"okAt": 2},
		"retry": {"policy": "default", "interval": "100ms", "maxAttempts": 3}}`,
	"tasks/Flaky/index.js": `
exports.run = function (argDict, ctx) {
  if (ctx.attempt < argDict.okAt) throw new Error("not yet " + ctx.attempt);
  return {attempt: ctx.attempt, taskId: ctx.taskId};
};
exports.decline = function (argDict, ctx) { ctx.fail("declined " + ctx.attempt); };
exports.holdSecond = function (argDict, ctx) {
  if (ctx.attempt < 2) throw new Error("first try fails");
  app.getElement("services.Probe").gate(argDict.gate);
  return "released";
};
`,
	"tasks/Slowly/e.json": `{"title": "Slowly", "type": "tasks.NormalType", "funcName": "second",
		"retry": {"policy": "default", "interval": "1s", "maxAttempts": 3}}`,
	"tasks/Slowly/index.js": slowlyJS + `exports.vanish = function () { throw new Error("still here"); };`,
	"tasks/Slow/e.json": `{"title": "Slow", "type": "tasks.NormalType", "funcName": "spin", "timeout": "100ms",
		"retry": {"policy": "default", "interval": "100ms", "maxAttempts": 2}}`,
	"tasks/Slow/index.js": `exports.spin = function () { for (;;) {} };`,
	"tasks/Exp/e.json": `{"title": "Exp", "type": "tasks.NormalType", "funcName": "boom",
		"retry": {"policy": "exponential", "interval": "60ms", "maxAttempts": 3}}`,
	"tasks/Exp/index.js": boomJS,
	"tasks/Cycle/e.json": `{"title": "Cycle", "type": "tasks.NormalType", "funcName": "boom",
		"retry": {"policy": "cyclic", "interval": "100ms", "window": "350ms"}}`,
	"tasks/Cycle/index.js": boomJS,
	"tasks/Plain/e.json":   `{"title": "Plain", "type": "tasks.NormalType", "funcName": "boom"}`,
	"tasks/Plain/index.js": boomJS,
	"tasks/None/e.json": `{"title": "None", "type": "tasks.NormalType", "funcName": "boom",
		"retry": {"policy": "none", "interval": "100ms", "maxAttempts": 5}}`,
	"tasks/None/index.js": boomJS,
}

const (
	boomJS   = `exports.boom = function (argDict, ctx) { throw new Error("boom " + ctx.attempt); };`
	slowlyJS = `
exports.second = function (argDict, ctx) {
  if (ctx.attempt < 2) throw new Error("first try fails");
  return ctx.attempt;
};
exports.always = function () { throw new Error("always"); };
`
)

// attempts lists each row's attempt.
func attempts(rows []logstore.Row) []int {
	out := make([]int, len(rows))
	for i, r := range rows {
		out[i] = r.Attempt
	}
	return out
}

// runs counts the running rows: the tries.
func runs(rows []logstore.Row) int {
	n := 0
	for _, r := range rows {
		if r.Status == logstore.StatusRunning {
			n++
		}
	}
	return n
}

func (b *bundle) createNow(template, funcName string, args map[string]any) string {
	b.t.Helper()
	return b.create(template, funcName, time.Now(), args)["taskId"].(string)
}

// TestRetryUntilSuccess: a failed run goes back to waiting and runs again after the policy's
// interval, as the next attempt of the same node, until one succeeds.
func TestRetryUntilSuccess(t *testing.T) {
	t.Parallel()
	b := setup(t, retryApp)
	id := b.createNow("tasks.Flaky", "run", map[string]any{"okAt": int64(3)})
	rows := b.awaitStage(id, logstore.StageDone)
	require.Equal(t, []string{"waiting/scheduled", "running/running", "waiting/retryScheduled", "running/running",
		"waiting/retryScheduled", "running/running", "success/done"}, stages(rows))
	require.Equal(t, []int{1, 1, 1, 2, 2, 3, 3}, attempts(rows))
	for i, r := range rows {
		require.Equal(t, id, r.NodeID, "every try is the task's node")
		require.Equal(t, rows[0].RequestID, r.RequestID)
		if r.Stage == logstore.StageRetryScheduled {
			require.Equal(t, vocab.CodeJSError, r.Error.Code)
			require.Contains(t, r.Error.Message, fmt.Sprintf("not yet %d", r.Attempt))
			require.False(t, r.EndTime.IsZero(), "the failed try's end")
			next := rows[i+1] // a running row is recorded as its try starts
			require.GreaterOrEqual(t, next.RecordedAt.Sub(r.EndTime), 99*time.Millisecond,
				"try %d started %s after try %d failed; the policy waits 100ms", next.Attempt, next.RecordedAt.Sub(r.EndTime), r.Attempt)
		}
	}
	rec := b.awaitStatus(id, timers.StatusSuccess)
	require.EqualValues(t, 3, rec["attempt"])
	require.Equal(t, map[string]any{"attempt": int64(3), "taskId": id}, rec["result"])
	require.Nil(t, rec["error"], "a success clears the error of the failed tries")
	require.NotNil(t, rec["firstStartedAt"])
	require.LessOrEqual(t, rec["firstStartedAt"].(string), rec["startedAt"].(string))
}

// TestRetryExhausted: when the policy allows no more tries the task ends as fail with the last
// try's error. A throw, ctx.fail and a timeout are all failed tries.
func TestRetryExhausted(t *testing.T) {
	t.Parallel()
	b := setup(t, retryApp)
	cases := []struct {
		name, template, funcName string
		args                     map[string]any
		tries                    int
		code, msg                string
	}{
		{"a throw", "tasks.Flaky", "run", map[string]any{"okAt": int64(99)}, 3, vocab.CodeJSError, "not yet 3"},
		{"ctx.fail", "tasks.Flaky", "decline", map[string]any{}, 3, vocab.CodeFailed, "declined 3"},
		{"a timeout", "tasks.Slow", "spin", map[string]any{}, 2, vocab.CodeTimeout, ""},
		{"exponential", "tasks.Exp", "boom", map[string]any{}, 3, vocab.CodeJSError, "boom 3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			id := b.createNow(tc.template, tc.funcName, tc.args)
			rows := b.awaitStage(id, logstore.StageFailed)
			require.Equal(t, tc.tries, runs(rows), "%v", stages(rows))
			last := rows[len(rows)-1]
			require.Equal(t, "fail/failed", last.Status+"/"+last.Stage)
			require.Equal(t, tc.tries, last.Attempt)
			require.Equal(t, tc.code, last.Error.Code)
			rec := b.awaitStatus(id, timers.StatusFail)
			require.EqualValues(t, tc.tries, rec["attempt"])
			terr := rec["error"].(map[string]any)
			require.Equal(t, tc.code, terr["code"])
			require.Contains(t, terr["message"], tc.msg)
			if tc.template == "tasks.Exp" {
				// Waits of 60ms, then 120ms, each drawn from its upper half.
				for i, r := range rows {
					if r.Stage == logstore.StageRetryScheduled {
						half := 30 * time.Millisecond << (r.Attempt - 1)
						require.GreaterOrEqual(t, rows[i+1].RecordedAt.Sub(r.EndTime), half-time.Millisecond, "wait after try %d", r.Attempt)
					}
				}
			}
		})
	}
	t.Run("cyclic", func(t *testing.T) {
		t.Parallel()
		id := b.createNow("tasks.Cycle", "boom", map[string]any{})
		rows := b.awaitStage(id, logstore.StageFailed)
		// Every 100ms while a try would start within 350ms of the first: 4 tries on time, fewer
		// when the machine is slow; never a try scheduled past the window.
		n := runs(rows)
		require.GreaterOrEqual(t, n, 2, "%v", stages(rows))
		require.LessOrEqual(t, n, 4, "%v", stages(rows))
		b.awaitStatus(id, timers.StatusFail)
	})
}

// TestNoRetryUnlessTheTemplateSays: tasks.Meta's retry defaults to policy none, so a template
// without a retry field, or with policy none whatever its maxAttempts, runs a task once.
func TestNoRetryUnlessTheTemplateSays(t *testing.T) {
	t.Parallel()
	b := setup(t, retryApp)
	tmpls := b.center.Templates()
	require.Equal(t, retry.Policy{Policy: retry.None, Interval: 5 * time.Minute, MaxAttempts: 1}, tmpls["tasks.Plain"].Retry)
	require.Equal(t, retry.Policy{Policy: retry.None, Interval: 100 * time.Millisecond, MaxAttempts: 1}, tmpls["tasks.None"].Retry)
	require.Equal(t, retry.Policy{Policy: retry.Default, Interval: 100 * time.Millisecond, MaxAttempts: 3}, tmpls["tasks.Flaky"].Retry)
	for _, template := range []string{"tasks.Plain", "tasks.None"} {
		id := b.createNow(template, "boom", map[string]any{})
		rows := b.awaitStage(id, logstore.StageFailed)
		require.Equal(t, []string{"waiting/scheduled", "running/running", "fail/failed"}, stages(rows), template)
		rec := b.awaitStatus(id, timers.StatusFail)
		require.EqualValues(t, 1, rec["attempt"], template)
	}
}

// TestRetryWaitsInTheStore: between tries the task is a waiting record — the failed try's attempt
// and error, the next start time — that forcedEnd ends for good.
func TestRetryWaitsInTheStore(t *testing.T) {
	t.Parallel()
	b := setup(t, retryApp)
	failedAt := time.Now()
	id := b.createNow("tasks.Slowly", "always", map[string]any{})
	b.awaitStage(id, logstore.StageRetryScheduled)
	rec := b.awaitStatus(id, timers.StatusWaiting)
	require.EqualValues(t, 1, rec["attempt"])
	require.Equal(t, "always", rec["error"].(map[string]any)["message"], "the failed try's error")
	require.NotNil(t, rec["firstStartedAt"])
	next, err := time.ParseInLocation("2006-01-02 15:04:05", rec["startTime"].(string), b.loc)
	require.NoError(t, err)
	require.False(t, next.Before(failedAt.Truncate(time.Second)), "the next start time is the retry's")
	total, page := b.listTasks(timers.ListQuery{FullName: "tasks.Slowly", Status: timers.StatusWaiting})
	require.EqualValues(t, 1, total)
	require.Equal(t, id, page[0]["taskId"])

	res, err := b.center.ForcedEnd(b.ctx, id)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"taskId": id, "status": timers.StatusForcedEnd}, res)
	time.Sleep(1500 * time.Millisecond) // past the retry time
	rows := b.rows(id)
	require.Equal(t, []string{"waiting/scheduled", "running/running", "waiting/retryScheduled", "fail/forcedEnd"}, stages(rows))
	require.Equal(t, 1, rows[3].Attempt)
	rec, err = b.center.GetTask(b.ctx, id)
	require.NoError(t, err)
	require.Equal(t, timers.StatusForcedEnd, rec["status"])
	require.EqualValues(t, 1, rec["attempt"], "it never ran again")
	_, err = b.center.ForcedEnd(b.ctx, id)
	require.Equal(t, vocab.CodeConflict, vocab.CodeOf(err))
}

// TestForcedEndOfARetryIsNotRetried: a try force-ended while it runs ends the task, however many
// tries the policy has left.
func TestForcedEndOfARetryIsNotRetried(t *testing.T) {
	t.Parallel()
	b := setup(t, retryApp)
	id := b.createNow("tasks.Flaky", "holdSecond", map[string]any{"gate": "retry-held"})
	b.probe.AwaitHit(t, "retry-held")
	_, err := b.center.ForcedEnd(b.ctx, id)
	require.NoError(t, err)
	b.probe.AwaitHit(t, "ended:retry-held")
	time.Sleep(300 * time.Millisecond) // a retry would have come by now
	ctx, cancel := context.WithTimeout(context.Background(), parttest.WaitLimit)
	defer cancel()
	require.NoError(t, b.center.Stop(ctx))
	rows := b.rows(id)
	require.Equal(t, []string{"waiting/scheduled", "running/running", "waiting/retryScheduled", "running/running", "fail/forcedEnd"}, stages(rows))
	require.Equal(t, []int{1, 1, 1, 2, 2}, attempts(rows))
	rec, err := b.center.GetTask(b.ctx, id)
	require.NoError(t, err)
	require.Equal(t, timers.StatusForcedEnd, rec["status"])
	require.EqualValues(t, 2, rec["attempt"])
}

// TestRetrySurvivesARestart: a retry waits in the task store, not in the memory of the host that
// scheduled it: after a restart the new host runs it when it is due.
func TestRetrySurvivesARestart(t *testing.T) {
	t.Parallel()
	b := setup(t, retryApp)
	first := b.rec.Host()
	id := b.createNow("tasks.Slowly", "second", map[string]any{})
	b.awaitStage(id, logstore.StageRetryScheduled)
	b.restart("restarted")
	rows := b.awaitStage(id, logstore.StageDone)
	require.Equal(t, []string{"waiting/scheduled", "running/running", "waiting/retryScheduled", "running/running", "success/done"}, stages(rows))
	require.Equal(t, first, rows[1].Host, "the first try ran on the first host")
	require.Equal(t, b.rec.Host(), rows[3].Host, "the retry on the restarted one")
	require.NotEqual(t, first, b.rec.Host())
	rec := b.awaitStatus(id, timers.StatusSuccess)
	require.EqualValues(t, 2, rec["attempt"])
	require.EqualValues(t, 2, rec["result"])
	require.Equal(t, b.rec.Host(), rec["host"])
}

// TestRetryOfRunNowAndTicks: "run now" and cron/interval ticks follow their template's retry.
func TestRetryOfRunNowAndTicks(t *testing.T) {
	t.Parallel()
	t.Run("run now", func(t *testing.T) {
		t.Parallel()
		b := setup(t, retryApp)
		rec, err := b.center.RunTemplateNow(b.ctx, "tasks.Flaky", nil)
		require.NoError(t, err)
		id := rec["taskId"].(string)
		rows := b.awaitStage(id, logstore.StageDone)
		require.Equal(t, []int{1, 1, 1, 2, 2}, attempts(rows), "%v", stages(rows))
		rec = b.awaitStatus(id, timers.StatusSuccess)
		require.EqualValues(t, 2, rec["attempt"], "the template's argDict: okAt 2")
	})
	t.Run("interval ticks", func(t *testing.T) {
		t.Parallel()
		b := setup(t, map[string]string{
			"tasks/Beat/e.json": `{"title": "Beat", "type": "tasks.NormalType", "repeatType": "interval", "interval": "1s",
				"funcName": "beat", "retry": {"policy": "default", "interval": "100ms", "maxAttempts": 2}}`,
			"tasks/Beat/index.js": `exports.beat = function (argDict, ctx) { if (ctx.attempt < 2) throw new Error("tick fails first"); return ctx.attempt; };`,
		})
		rows := b.log.Sink.Await(t, "a tick's retry that succeeds", func(rows []logstore.Row) bool {
			for _, r := range rows {
				if r.FullName == "tasks.Beat" && r.Stage == logstore.StageDone {
					return true
				}
			}
			return false
		})
		var id string
		for _, r := range rows {
			if r.Stage == logstore.StageDone {
				id = r.NodeID
				break
			}
		}
		require.Equal(t, []string{"running/running", "waiting/retryScheduled", "running/running", "success/done"}, stages(b.rows(id)),
			"a tick is created running, then retried like any task")
		rec := b.awaitStatus(id, timers.StatusSuccess)
		require.EqualValues(t, 2, rec["attempt"])
		require.EqualValues(t, 2, rec["result"])
	})
}

// TestRetryBadInput: a retry cannot make a task of a function that does not exist; a function or
// template that a reload removes while a retry waits fails the next try, and a task whose
// template is gone is not retried again.
func TestRetryBadInput(t *testing.T) {
	t.Parallel()
	t.Run("no such function", func(t *testing.T) {
		t.Parallel()
		b := setup(t, retryApp, func(o *tasks.Options) { o.Serve = false })
		_, err := b.center.CreateTimerTask(b.ctx, tasks.CreateRequest{FullName: "tasks.Flaky", FuncName: "nope",
			TaskType: "tasks.NormalType", StartTime: time.Now(), ArgDict: map[string]any{}})
		require.Equal(t, vocab.CodeNotFound, vocab.CodeOf(err), "%v", err)
		total, _ := b.listTasks(timers.ListQuery{})
		require.Zero(t, total)
	})
	t.Run("the function is removed while a retry waits", func(t *testing.T) {
		t.Parallel()
		b := setup(t, retryApp)
		id := b.createNow("tasks.Slowly", "vanish", map[string]any{})
		b.awaitStage(id, logstore.StageRetryScheduled)
		b.reload(parttest.With(retryApp, "tasks/Slowly/index.js", slowlyJS))
		rows := b.awaitStage(id, logstore.StageFailed)
		require.Equal(t, 3, runs(rows), "the template's retry still applies: %v", stages(rows))
		rec := b.awaitStatus(id, timers.StatusFail)
		require.EqualValues(t, 3, rec["attempt"])
		msg := rec["error"].(map[string]any)["message"].(string)
		require.NotContains(t, msg, "still here", "the last try's error, not the first's")
		require.Contains(t, msg, "vanish")
	})
	t.Run("the template is removed while a retry waits", func(t *testing.T) {
		t.Parallel()
		b := setup(t, retryApp)
		id := b.createNow("tasks.Slowly", "always", map[string]any{})
		b.awaitStage(id, logstore.StageRetryScheduled)
		files := map[string]string{}
		for name, text := range retryApp {
			if !strings.HasPrefix(name, "tasks/Slowly/") {
				files[name] = text
			}
		}
		b.reload(files)
		rows := b.awaitStage(id, logstore.StageFailed)
		require.Equal(t, []string{"waiting/scheduled", "running/running", "waiting/retryScheduled", "running/running", "fail/failed"}, stages(rows),
			"the waiting try runs and fails; with no template there is no policy to retry it by")
		rec := b.awaitStatus(id, timers.StatusFail)
		require.EqualValues(t, 2, rec["attempt"])
	})
}
