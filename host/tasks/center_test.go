package tasks_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/internal/parttest"
	"github.com/trellis-run/trellis/host/tasks"
	"github.com/trellis-run/trellis/host/timers"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

// taskApp has a one-shot template whose functions succeed, throw, fail or wait at the probe; a
// cron template (which never comes due in a test); a service; and a model with date-field
// templates.
var taskApp = map[string]string{
	"app.json":          `{"name": "taskstest", "timezone": "Asia/Shanghai"}`,
	"tasks/Once/e.json": `{"title": "Once", "type": "tasks.NormalType", "funcName": "run"}`,
	"tasks/Once/index.js": `
exports.run = function (argDict, ctx) {
  return {orderId: argDict.orderId, text: String(argDict.orderId), taskId: ctx.taskId, attempt: ctx.attempt};
};
exports.boom = function () { throw new Error("boom"); };
exports.decline = function (argDict, ctx) { ctx.fail("declined"); };
exports.hold = function (argDict) { app.getElement("services.Probe").gate(argDict.gate); return "released"; };
`,
	"tasks/Nightly/e.json":   `{"title": "Nightly backup", "type": "tasks.NormalType", "repeatType": "cron", "cron": "0 3 * * *", "funcName": "services.Echo.echo"}`,
	"services/Echo/e.json":   `{"title": "Echo", "type": "services.NormalType"}`,
	"services/Echo/index.js": `exports.echo = function (argDict) { return argDict; };`,
	"models/Order/e.json": `{"title": "Order", "type": "models.NormalType", "fields": [
		{"name": "id", "type": "AutoInt"}, {"name": "dueAt", "type": "Datetime"}, {"name": "shipOn", "type": "Date"}]}`,
	"tasks/Remind/e.json": `{"title": "Remind before due", "type": "tasks.NormalType", "repeatType": "dateField",
		"dateField": {"model": "models.Order", "field": "dueAt", "offset": "-1h"}, "funcName": "remind"}`,
	"tasks/Remind/index.js": `exports.remind = function (argDict) { app.getElement("services.Probe").hit("remind:" + argDict.rowId); return argDict.rowId; };`,
	"tasks/Ship/e.json": `{"title": "Ship", "type": "tasks.NormalType", "repeatType": "dateField",
		"dateField": {"model": "models.Order", "field": "shipOn"}, "funcName": "services.Echo.echo"}`,
	"tasks/OffRemind/e.json": `{"title": "Disabled reminder", "type": "tasks.NormalType", "repeatType": "dateField", "enabled": false,
		"dateField": {"model": "models.Order", "field": "dueAt"}, "funcName": "services.Echo.echo"}`,
}

const big = int64(9007199254740993) // 2^53 + 1: a float64 would make it ...992

func TestNewChecksOptions(t *testing.T) {
	t.Parallel()
	_, err := tasks.New(tasks.Options{})
	require.ErrorContains(t, err, "Store, Executor, Log, Snapshot and Location are required")
	b := setup(t, taskApp, func(o *tasks.Options) { o.Serve = false })
	_, err = tasks.New(tasks.Options{Store: b.store, Executor: b.vm, Log: b.rec, Snapshot: b.snap.Load,
		Location: func() *time.Location { return b.loc }, Serve: true})
	require.ErrorContains(t, err, "Coordinator is required")
}

// TestCreateTimerTaskChecksArguments: each wrong argument is refused with the code that says
// what is wrong and a message naming it; nothing is stored for any of them.
func TestCreateTimerTaskChecksArguments(t *testing.T) {
	t.Parallel()
	b := setup(t, taskApp, func(o *tasks.Options) { o.Serve = false })
	soon := time.Now().Add(time.Hour).UnixMilli()
	valid := func(change func(*tasks.CreateRequest)) tasks.CreateRequest {
		r := tasks.CreateRequest{FullName: "tasks.Once", FuncName: "run", TaskType: "tasks.NormalType", StartTime: soon, ArgDict: map[string]any{}}
		change(&r)
		return r
	}
	cases := []struct {
		name string
		req  tasks.CreateRequest
		code string
		msg  string
	}{
		{"fullName not a string", valid(func(r *tasks.CreateRequest) { r.FullName = int64(7) }), vocab.CodeInvalidArgument,
			"fullName must be a non-empty string: the task template, such as tasks.DataBackup; got"},
		{"fullName blank", valid(func(r *tasks.CreateRequest) { r.FullName = "  " }), vocab.CodeInvalidArgument, "fullName must be a non-empty string"},
		{"unknown template", valid(func(r *tasks.CreateRequest) { r.FullName = "tasks.Nope" }), vocab.CodeNotFound,
			"no task template tasks.Nope; getTaskTmplList lists them"},
		{"an element that is no template", valid(func(r *tasks.CreateRequest) { r.FullName = "services.Echo" }), vocab.CodeNotFound,
			"no task template services.Echo"},
		{"taskType missing", valid(func(r *tasks.CreateRequest) { r.TaskType = nil }), vocab.CodeInvalidArgument,
			"taskType must be a non-empty string: the template's type, such as tasks.NormalType"},
		{"taskType of another Meta", valid(func(r *tasks.CreateRequest) { r.TaskType = "events.NormalType" }), vocab.CodeInvalidArgument,
			`taskType "events.NormalType" does not fit template tasks.Once, whose type is tasks.NormalType`},
		{"funcName missing", valid(func(r *tasks.CreateRequest) { r.FuncName = "" }), vocab.CodeInvalidArgument,
			"funcName must be a non-empty string"},
		{"funcName not exported", valid(func(r *tasks.CreateRequest) { r.FuncName = "nope" }), vocab.CodeNotFound,
			`funcName "nope": tasks.Once has no function nope`},
		{"funcName of an unknown element", valid(func(r *tasks.CreateRequest) { r.FuncName = "services.Nope.run" }), vocab.CodeNotFound,
			`funcName "services.Nope.run": no element services.Nope`},
		{"funcName of another template", valid(func(r *tasks.CreateRequest) { r.FuncName = "tasks.Remind.remind" }), vocab.CodeInvalidArgument,
			`funcName "tasks.Remind.remind": tasks.Remind is not a service`},
		{"funcName a service does not export", valid(func(r *tasks.CreateRequest) { r.FuncName = "services.Echo.nope" }), vocab.CodeNotFound,
			"services.Echo has no function nope"},
		{"funcName a built-in service lacks", valid(func(r *tasks.CreateRequest) { r.FuncName = "services.TaskSvc.nope" }), vocab.CodeNotFound,
			"services.TaskSvc has no function nope"},
		{"startTime missing", valid(func(r *tasks.CreateRequest) { r.StartTime = nil }), vocab.CodeInvalidArgument,
			`startTime is required: "YYYY-MM-DD HH:mm:ss" (app timezone), ISO-8601, epoch milliseconds or a Date`},
		{"startTime unreadable", valid(func(r *tasks.CreateRequest) { r.StartTime = "tomorrow-ish" }), vocab.CodeInvalidArgument, "startTime: "},
		{"startTime before 2000", valid(func(r *tasks.CreateRequest) { r.StartTime = "1999-12-31 23:59:59" }), vocab.CodeInvalidArgument,
			"startTime 1999-12-31 23:59:59 is out of range: give a time between 2000 and 100 years from now"},
		{"startTime centuries ahead", valid(func(r *tasks.CreateRequest) { r.StartTime = "2300-01-01 00:00:00" }), vocab.CodeInvalidArgument, "is out of range"},
		{"argDict missing", valid(func(r *tasks.CreateRequest) { r.ArgDict = nil }), vocab.CodeInvalidArgument, "argDict must be an object, got"},
		{"argDict an array", valid(func(r *tasks.CreateRequest) { r.ArgDict = []any{int64(1)} }), vocab.CodeInvalidArgument, "argDict must be an object, got"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := b.center.CreateTimerTask(b.ctx, tc.req)
			require.Error(t, err)
			require.Equal(t, tc.code, vocab.CodeOf(err), "%v", err)
			require.ErrorContains(t, err, tc.msg)
		})
	}
	t.Cleanup(func() { // after the parallel cases have finished
		total, _ := b.listTasks(timers.ListQuery{})
		require.Zero(t, total, "nothing stored")
		require.Empty(t, b.log.Sink.All(), "nothing logged either")
	})
}

// TestCreateTimerTaskAccepts: the forms a valid call may take, and the record it answers.
func TestCreateTimerTaskAccepts(t *testing.T) {
	t.Parallel()
	b := setup(t, taskApp, func(o *tasks.Options) { o.Serve = false })
	at := time.Date(2031, 5, 6, 7, 8, 9, 0, b.loc)
	cases := []struct {
		name string
		req  tasks.CreateRequest
	}{
		{"app-timezone text", tasks.CreateRequest{FullName: "tasks.Once", FuncName: "run", TaskType: "tasks.NormalType", StartTime: "2031-05-06 07:08:09"}},
		{"ISO-8601", tasks.CreateRequest{FullName: "tasks.Once", FuncName: "run", TaskType: "tasks.NormalType", StartTime: at.UTC().Format(time.RFC3339)}},
		{"epoch milliseconds", tasks.CreateRequest{FullName: "tasks.Once", FuncName: "run", TaskType: "tasks.NormalType", StartTime: at.UnixMilli()}},
		{"a Date", tasks.CreateRequest{FullName: "tasks.Once", FuncName: "run", TaskType: "tasks.NormalType", StartTime: at}},
		{"the template's Meta as taskType", tasks.CreateRequest{FullName: "tasks.Once", FuncName: "run", TaskType: "tasks.Meta", StartTime: at}},
		{"a service function", tasks.CreateRequest{FullName: "tasks.Once", FuncName: "services.Echo.echo", TaskType: "tasks.NormalType", StartTime: at}},
		{"a built-in service function", tasks.CreateRequest{FullName: "tasks.Nightly", FuncName: "services.TaskSvc.getTask", TaskType: "tasks.NormalType", StartTime: at}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.req.ArgDict = map[string]any{"orderId": big}
			tc.req.Caller = tasks.Caller{Element: "services.Echo", RequestID: "req_" + strings.ReplaceAll(tc.name, " ", "_"), NodeID: "node_caller"}
			rec, err := b.center.CreateTimerTask(b.ctx, tc.req)
			require.NoError(t, err)
			id := rec["taskId"].(string)
			require.True(t, strings.HasPrefix(id, "task_"), id)
			require.Equal(t, map[string]any{
				"taskId": id, "fullName": tc.req.FullName, "funcName": tc.req.FuncName, "taskType": tc.req.TaskType,
				"argDict": map[string]any{"orderId": big}, "startTime": "2031-05-06 07:08:09", "status": timers.StatusWaiting,
				"result": nil, "error": nil, "requestId": tc.req.Caller.RequestID, "nodeId": id, "attempt": int64(0), "host": "",
				"createdAt": rec["createdAt"], "startedAt": nil, "endedAt": nil, "firstStartedAt": nil,
			}, rec, "datetimes in the app timezone")
			got, err := b.center.GetTask(b.ctx, id)
			require.NoError(t, err)
			require.Equal(t, rec, got, "the stored record reads back the same, big integers exact")

			rows := b.awaitStage(id, logstore.StageScheduled)
			require.Equal(t, []string{"waiting/scheduled"}, stages(rows))
			r := rows[0]
			require.Equal(t, logstore.KindTask, r.Kind)
			require.Equal(t, tc.req.FullName, r.FullName)
			require.Equal(t, tc.req.Caller.RequestID, r.RequestID, "a task created from a handler joins its request")
			require.Equal(t, "node_caller", r.ParentNodeID, "as a child of the caller's node")
			require.Equal(t, b.rec.Host(), r.Host)
			require.JSONEq(t, `{"orderId": 9007199254740993}`, string(r.Kwargs))
		})
	}
	t.Run("a new request without a caller", func(t *testing.T) {
		t.Parallel()
		rec := b.create("tasks.Once", "run", at, map[string]any{})
		require.True(t, strings.HasPrefix(rec["requestId"].(string), "req_"))
	})
}

// TestTimerTaskRuns: a due task runs its function once, with its argDict exactly as given, and
// ends as success or fail with the function's error; the log holds scheduled → running → end.
func TestTimerTaskRuns(t *testing.T) {
	t.Parallel()
	b := setup(t, taskApp)
	cases := []struct {
		name, funcName string
		status, stage  string
		result         func(id string) any
		err            *timers.TaskError
	}{
		{name: "success", funcName: "run", status: timers.StatusSuccess, stage: logstore.StageDone,
			result: func(id string) any {
				return map[string]any{"orderId": big, "text": "9007199254740993", "taskId": id, "attempt": int64(1)}
			}},
		{name: "a service function", funcName: "services.Echo.echo", status: timers.StatusSuccess, stage: logstore.StageDone,
			result: func(string) any { return map[string]any{"orderId": big} }},
		{name: "a throw", funcName: "boom", status: timers.StatusFail, stage: logstore.StageFailed,
			err: &timers.TaskError{Code: vocab.CodeJSError, Message: "boom"}},
		{name: "ctx.fail", funcName: "decline", status: timers.StatusFail, stage: logstore.StageFailed,
			err: &timers.TaskError{Code: vocab.CodeFailed, Message: "declined"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now().Add(200 * time.Millisecond)
			id := b.create("tasks.Once", tc.funcName, start, map[string]any{"orderId": big})["taskId"].(string)
			rows := b.awaitStage(id, tc.stage)
			require.Equal(t, []string{"waiting/scheduled", "running/running", tc.status + "/" + tc.stage}, stages(rows))
			rec := b.awaitStatus(id, tc.status)
			require.EqualValues(t, 1, rec["attempt"], "fired once")
			started, err := time.ParseInLocation("2006-01-02 15:04:05", rec["startedAt"].(string), b.loc)
			require.NoError(t, err)
			require.False(t, started.Before(start.Truncate(time.Second)), "never before its start time")
			require.NotNil(t, rec["endedAt"])
			require.Equal(t, b.rec.Host(), rec["host"], "the record names the host that ran it, as log rows do")
			last := rows[len(rows)-1]
			for _, r := range rows {
				require.Equal(t, id, r.NodeID, "a task's node is the task")
				require.Equal(t, rec["requestId"], r.RequestID)
				require.Equal(t, 1, r.Attempt)
				require.JSONEq(t, `{"orderId": 9007199254740993}`, string(r.Kwargs))
			}
			if tc.err == nil {
				require.Equal(t, tc.result(id), rec["result"])
				require.Nil(t, rec["error"])
				want, err := json.Marshal(tc.result(id))
				require.NoError(t, err)
				require.JSONEq(t, string(want), string(last.Result))
				require.Contains(t, string(last.Result), "9007199254740993")
				return
			}
			terr := rec["error"].(map[string]any)
			require.Equal(t, tc.err.Code, terr["code"])
			require.Contains(t, terr["message"], tc.err.Message)
			require.Equal(t, tc.err.Code, last.Error.Code, "the log row and the record agree")
			require.Equal(t, terr["message"], last.Error.Message)
		})
	}
}

// TestForcedEnd: a waiting task never runs; a running one is interrupted and keeps forcedEnd;
// a finished one cannot be ended again.
func TestForcedEnd(t *testing.T) {
	t.Parallel()
	b := setup(t, taskApp)

	waiting := b.create("tasks.Once", "run", time.Now().Add(time.Hour), map[string]any{})["taskId"].(string)
	res, err := b.center.ForcedEnd(b.ctx, waiting)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"taskId": waiting, "status": timers.StatusForcedEnd}, res)
	rows := b.awaitStage(waiting, logstore.StageForcedEnd)
	require.Equal(t, []string{"waiting/scheduled", "fail/forcedEnd"}, stages(rows))
	require.Equal(t, &logstore.RowError{Code: logstore.StageForcedEnd, Message: "the task was force-ended"}, rows[1].Error)
	require.False(t, rows[1].EndTime.IsZero())
	rec, err := b.center.GetTask(b.ctx, waiting)
	require.NoError(t, err)
	require.Equal(t, timers.StatusForcedEnd, rec["status"])
	require.NotNil(t, rec["endedAt"])

	_, err = b.center.ForcedEnd(b.ctx, waiting)
	require.Equal(t, vocab.CodeConflict, vocab.CodeOf(err), "%v", err)
	require.ErrorContains(t, err, "forcedEnd")

	running := b.create("tasks.Once", "hold", time.Now(), map[string]any{"gate": "held"})["taskId"].(string)
	b.probe.AwaitHit(t, "held")
	res, err = b.center.ForcedEnd(b.ctx, running)
	require.NoError(t, err)
	require.Equal(t, timers.StatusForcedEnd, res["status"])
	b.probe.AwaitHit(t, "ended:held") // the function was interrupted, not let go
	// Once the center has stopped, every run has returned: the forced one recorded no end of its own.
	ctx, cancel := context.WithTimeout(context.Background(), parttest.WaitLimit)
	defer cancel()
	require.NoError(t, b.center.Stop(ctx))
	require.Equal(t, []string{"waiting/scheduled", "running/running", "fail/forcedEnd"}, stages(b.rows(running)))
	rec, err = b.center.GetTask(b.ctx, running)
	require.NoError(t, err)
	require.Equal(t, timers.StatusForcedEnd, rec["status"])
	require.Nil(t, rec["result"])

	for _, tc := range []struct{ id, code string }{{"", vocab.CodeInvalidArgument}, {" ", vocab.CodeInvalidArgument}, {"task_unknown", vocab.CodeNotFound}} {
		_, err := b.center.ForcedEnd(b.ctx, tc.id)
		require.Equal(t, tc.code, vocab.CodeOf(err), "forcedEnd(%q): %v", tc.id, err)
	}
}

// TestGetAndListTasks: records by id, and pages of them newest first, filtered by template and
// status.
func TestGetAndListTasks(t *testing.T) {
	t.Parallel()
	b := setup(t, taskApp, func(o *tasks.Options) { o.Serve = false })
	later := time.Now().Add(time.Hour)
	var ids []string
	for _, tmpl := range []string{"tasks.Once", "tasks.Nightly", "tasks.Once"} {
		ids = append(ids, b.create(tmpl, "services.Echo.echo", later, map[string]any{"n": int64(len(ids))})["taskId"].(string))
	}
	_, err := b.center.ForcedEnd(b.ctx, ids[0])
	require.NoError(t, err)

	rec, err := b.center.GetTask(b.ctx, ids[1])
	require.NoError(t, err)
	require.Equal(t, "tasks.Nightly", rec["fullName"])
	require.Equal(t, map[string]any{"n": int64(1)}, rec["argDict"])

	cases := []struct {
		name  string
		q     timers.ListQuery
		total int64
		want  []string
	}{
		{"all, newest first", timers.ListQuery{}, 3, []string{ids[2], ids[1], ids[0]}},
		{"by template", timers.ListQuery{FullName: "tasks.Once"}, 2, []string{ids[2], ids[0]}},
		{"by status", timers.ListQuery{Status: timers.StatusWaiting}, 2, []string{ids[2], ids[1]}},
		{"by both", timers.ListQuery{FullName: "tasks.Once", Status: timers.StatusForcedEnd}, 1, []string{ids[0]}},
		{"a page", timers.ListQuery{Page: 2, PageSize: 1}, 3, []string{ids[1]}},
		{"past the end", timers.ListQuery{Page: 9, PageSize: 1}, 3, nil},
		{"no match", timers.ListQuery{FullName: "tasks.Nope"}, 0, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			total, rows := b.listTasks(tc.q)
			require.Equal(t, tc.total, total)
			var got []string
			for _, r := range rows {
				got = append(got, r["taskId"].(string))
			}
			require.Equal(t, tc.want, got)
		})
	}

	for _, tc := range []struct {
		name string
		err  func() error
		code string
	}{
		{"get without an id", func() error { _, err := b.center.GetTask(b.ctx, ""); return err }, vocab.CodeInvalidArgument},
		{"get an unknown id", func() error { _, err := b.center.GetTask(b.ctx, "task_nope"); return err }, vocab.CodeNotFound},
		{"list by an unknown status", func() error { _, err := b.center.ListTasks(b.ctx, timers.ListQuery{Status: "done"}); return err }, vocab.CodeInvalidArgument},
		{"list a page too large", func() error {
			_, err := b.center.ListTasks(b.ctx, timers.ListQuery{PageSize: timers.MaxPageSize + 1})
			return err
		}, vocab.CodeInvalidArgument},
	} {
		require.Equal(t, tc.code, vocab.CodeOf(tc.err()), tc.name)
	}
}
