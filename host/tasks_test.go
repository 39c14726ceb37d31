package host_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/backends"
	"github.com/trellis-run/trellis/host/tasks"
	"github.com/trellis-run/trellis/host/timers"
	"github.com/trellis-run/trellis/logstore"
)

// taskApp has a one-shot template whose own function doubles argDict.x, a slow one, and a
// service that creates tasks from JS.
var taskApp = map[string]string{
	"app.json":             `{"name": "tasks", "timezone": "Asia/Shanghai"}`,
	"tasks/Once/e.json":    `{"title": "Once", "type": "tasks.NormalType", "repeatType": "once", "funcName": "run"}`,
	"tasks/Once/index.js":  `exports.run = function (argDict, ctx) { return {doubled: argDict.x * 2, taskId: ctx.taskId}; };`,
	"tasks/Slow/e.json":    `{"title": "Slow", "type": "tasks.NormalType", "funcName": "spin", "timeout": "60s"}`,
	"tasks/Slow/index.js":  `exports.spin = function () { for (;;) {} };`,
	"services/Plan/e.json": `{"title": "Plan", "type": "services.NormalType"}`,
	"services/Plan/index.js": `
const taskSvc = app.getElement("services.TaskSvc");
exports.at = function (fullName, when, argDict) {
  return taskSvc.createTimerTask(fullName, when, fullName === "tasks.Slow" ? "spin" : "run", "tasks.NormalType", argDict);
};
exports.named = function (when) {
  return taskSvc.createTimerTask({fullName: "tasks.Once", startTime: when, funcName: "services.Plan.echo", taskType: "tasks.NormalType", argDict: {a: 1}});
};
exports.echo = function (argDict) { return argDict; };
exports.get = function (id) { return taskSvc.getTask(id); };
exports.end = function (id) { return taskSvc.forcedEnd(id); };`,
}

func waitTask(t *testing.T, h *host.Host, id string, status string) map[string]any {
	t.Helper()
	var rec map[string]any
	require.Eventually(t, func() bool {
		var err error
		rec, err = h.Tasks().GetTask(context.Background(), id)
		require.NoError(t, err)
		return rec["status"] == status
	}, 20*time.Second, 10*time.Millisecond, "task %s never reached %s (last %v)", id, status, rec)
	return rec
}

func taskRows(t *testing.T, h *host.Host, nodeID string) []logstore.Row {
	t.Helper()
	require.NoError(t, h.LogWriter().Flush(context.Background()))
	rows, err := h.LogStore().Attempts(context.Background(), nodeID)
	require.NoError(t, err)
	return rows
}

func TestCreateTimerTaskFiresOnce(t *testing.T) {
	t.Parallel()
	h := setup(t, host.Config{Sandbox: host.SandboxInProcess, ServeEvents: true}, taskApp)
	ctx := context.Background()
	due := time.Now().Add(400 * time.Millisecond)
	res, err := h.CallService(ctx, "services.Plan", "at", []any{"tasks.Once", due.UnixMilli(), map[string]any{"x": int64(21)}})
	require.NoError(t, err)
	created := res.Value.(map[string]any)
	id := created["taskId"].(string)
	require.Equal(t, "waiting", created["status"])
	require.Equal(t, "tasks.Once", created["fullName"])
	require.Equal(t, due.In(h.Location()).Format("2006-01-02 15:04:05"), created["startTime"], "startTime in the app timezone")

	rec := waitTask(t, h, id, "success")
	require.Equal(t, map[string]any{"doubled": float64(42), "taskId": id}, normalize(rec["result"]))
	ran, err := time.ParseInLocation("2006-01-02 15:04:05", rec["startedAt"].(string), h.Location())
	require.NoError(t, err)
	require.False(t, ran.Before(due.Truncate(time.Second)), "never before its start time")

	rows := taskRows(t, h, id)
	var states []string
	for _, r := range rows {
		require.Equal(t, logstore.KindTask, r.Kind)
		states = append(states, r.Status+"/"+r.Stage)
	}
	require.Equal(t, []string{"waiting/scheduled", "running/running", "success/done"}, states)

	named, err := h.CallService(ctx, "services.Plan", "named", []any{"2001-01-01 00:00:00"})
	require.NoError(t, err)
	rec = waitTask(t, h, named.Value.(map[string]any)["taskId"].(string), "success")
	require.Equal(t, map[string]any{"a": float64(1)}, normalize(rec["result"]), "a start time long past fires at once; service funcName")
}

func TestTaskBadInput(t *testing.T) {
	t.Parallel()
	h := setup(t, host.Config{Sandbox: host.SandboxInProcess}, taskApp)
	ctx := context.Background()
	soon := time.Now().Add(time.Hour).UnixMilli()
	cases := []struct {
		name string
		req  tasks.CreateRequest
		code string
	}{
		{"unknown template", tasks.CreateRequest{FullName: "tasks.Nope", FuncName: "run", TaskType: "tasks.NormalType", StartTime: soon, ArgDict: map[string]any{}}, "not_found"},
		{"unknown funcName", tasks.CreateRequest{FullName: "tasks.Once", FuncName: "nope", TaskType: "tasks.NormalType", StartTime: soon, ArgDict: map[string]any{}}, "not_found"},
		{"unknown service", tasks.CreateRequest{FullName: "tasks.Once", FuncName: "services.Nope.run", TaskType: "tasks.NormalType", StartTime: soon, ArgDict: map[string]any{}}, "not_found"},
		{"wrong taskType", tasks.CreateRequest{FullName: "tasks.Once", FuncName: "run", TaskType: "events.NormalType", StartTime: soon, ArgDict: map[string]any{}}, "invalid_argument"},
		{"unparseable time", tasks.CreateRequest{FullName: "tasks.Once", FuncName: "run", TaskType: "tasks.NormalType", StartTime: "tomorrow-ish", ArgDict: map[string]any{}}, "invalid_argument"},
		{"absurd time", tasks.CreateRequest{FullName: "tasks.Once", FuncName: "run", TaskType: "tasks.NormalType", StartTime: "9999-01-01 00:00:00", ArgDict: map[string]any{}}, "invalid_argument"},
		{"ancient time", tasks.CreateRequest{FullName: "tasks.Once", FuncName: "run", TaskType: "tasks.NormalType", StartTime: "1900-01-01 00:00:00", ArgDict: map[string]any{}}, "invalid_argument"},
		{"missing time", tasks.CreateRequest{FullName: "tasks.Once", FuncName: "run", TaskType: "tasks.NormalType", ArgDict: map[string]any{}}, "invalid_argument"},
		{"argDict not an object", tasks.CreateRequest{FullName: "tasks.Once", FuncName: "run", TaskType: "tasks.NormalType", StartTime: soon, ArgDict: []any{1}}, "invalid_argument"},
		{"fullName not a string", tasks.CreateRequest{FullName: 7, FuncName: "run", TaskType: "tasks.NormalType", StartTime: soon, ArgDict: map[string]any{}}, "invalid_argument"},
	}
	for _, tc := range cases {
		_, err := h.Tasks().CreateTimerTask(ctx, tc.req)
		require.Error(t, err, tc.name)
		var coded interface{ ErrorCode() string }
		require.ErrorAs(t, err, &coded, tc.name)
		require.Equal(t, tc.code, coded.ErrorCode(), "%s: %v", tc.name, err)
	}
	page, err := h.Tasks().ListTasks(ctx, timers.ListQuery{})
	require.NoError(t, err)
	require.EqualValues(t, 0, page["totalCount"], "nothing stored half-way")

	_, err = h.CallService(ctx, "services.Plan", "end", []any{"task_unknown"})
	require.ErrorContains(t, err, "not found")
	_, err = h.CallService(ctx, "services.Plan", "get", []any{"task_unknown"})
	require.Error(t, err)
}

func TestForcedEnd(t *testing.T) {
	t.Parallel()
	h := setup(t, host.Config{Sandbox: host.SandboxInProcess, ServeEvents: true}, taskApp)
	ctx := context.Background()

	// A waiting task never runs.
	res, err := h.CallService(ctx, "services.Plan", "at", []any{"tasks.Once", time.Now().Add(300 * time.Millisecond).UnixMilli(), map[string]any{"x": int64(1)}})
	require.NoError(t, err)
	waiting := res.Value.(map[string]any)["taskId"].(string)
	end, err := h.CallService(ctx, "services.Plan", "end", []any{waiting})
	require.NoError(t, err)
	require.Equal(t, map[string]any{"taskId": waiting, "status": "forcedEnd"}, normalize(end.Value))
	time.Sleep(600 * time.Millisecond) // past its start time: it must not run
	for _, r := range taskRows(t, h, waiting) {
		require.NotEqual(t, logstore.StatusRunning, r.Status, "a force-ended waiting task never runs")
	}
	_, err = h.Tasks().ForcedEnd(ctx, waiting)
	require.ErrorContains(t, err, "forcedEnd", "a finished task cannot be force-ended again")

	// A running one is interrupted within a second.
	res, err = h.CallService(ctx, "services.Plan", "at", []any{"tasks.Slow", time.Now().UnixMilli(), map[string]any{}})
	require.NoError(t, err)
	running := res.Value.(map[string]any)["taskId"].(string)
	waitTask(t, h, running, "running")
	start := time.Now()
	_, err = h.Tasks().ForcedEnd(ctx, running)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		rows := taskRows(t, h, running)
		return len(rows) > 0 && rows[len(rows)-1].Stage == "forcedEnd"
	}, 5*time.Second, 10*time.Millisecond)
	// The sandbox is free again: another task runs to its end.
	res, err = h.CallService(ctx, "services.Plan", "at", []any{"tasks.Once", time.Now().UnixMilli(), map[string]any{"x": int64(2)}})
	require.NoError(t, err)
	waitTask(t, h, res.Value.(map[string]any)["taskId"].(string), "success")
	require.Less(t, time.Since(start), 5*time.Second)
	rec := waitTask(t, h, running, "forcedEnd")
	require.NotNil(t, rec["endedAt"])
}

func TestIntervalTemplateTicks(t *testing.T) {
	t.Parallel()
	files := map[string]string{
		"app.json":            `{"name": "ticks"}`,
		"tasks/Beat/e.json":   `{"title": "Beat", "type": "tasks.NormalType", "repeatType": "interval", "interval": "1s", "funcName": "beat", "argDict": {"k": "v"}}`,
		"tasks/Beat/index.js": `exports.beat = function (argDict, ctx) { return argDict.k; };`,
	}
	h := setup(t, host.Config{Sandbox: host.SandboxInProcess, ServeEvents: true}, files)
	var page map[string]any
	require.Eventually(t, func() bool {
		var err error
		page, err = h.Tasks().ListTasks(context.Background(), timers.ListQuery{FullName: "tasks.Beat", Status: "success"})
		require.NoError(t, err)
		return page["totalCount"].(int64) >= 2
	}, 10*time.Second, 50*time.Millisecond)
	rec := page["rowDatas"].([]any)[0].(map[string]any)
	require.Equal(t, "v", rec["result"])
	require.Equal(t, "tasks.NormalType", rec["taskType"])
	start, err := time.ParseInLocation("2006-01-02 15:04:05", rec["startTime"].(string), h.Location())
	require.NoError(t, err)
	require.Zero(t, start.Nanosecond(), "interval ticks fall on whole multiples of the interval")
}

// TestTasksDueWhileEveryHostIsDown stops the only host before its tasks come due and starts a
// new one on the same data directory (or Redis) after: each task fires exactly once, none early.
func TestTasksDueWhileEveryHostIsDown(t *testing.T) {
	t.Parallel()
	for _, redisURL := range []string{"", os.Getenv("TRELLIS_TEST_REDIS")} {
		name := "embedded"
		if redisURL != "" {
			name = "redis"
		}
		t.Run(name, func(t *testing.T) {
			files := map[string]string{}
			for k, v := range taskApp {
				files[k] = v
			}
			files["app.json"] = fmt.Sprintf(`{"name": "down%d"}`, time.Now().UnixNano())
			dir := writeApp(t, files)
			data := t.TempDir()
			cfg := host.Config{AppDir: dir, DataDir: data, Sandbox: host.SandboxInProcess, ServeEvents: true, RedisURL: redisURL, Workers: 1}
			h1, err := host.New(cfg, backends.Open)
			require.NoError(t, err)
			require.NoError(t, h1.Start(context.Background()))
			due := time.Now().Add(time.Second)
			var ids []string
			for i := range 20 {
				rec, err := h1.Tasks().CreateTimerTask(context.Background(), tasks.CreateRequest{FullName: "tasks.Once", FuncName: "run",
					TaskType: "tasks.NormalType", StartTime: due.Add(time.Duration(i) * 10 * time.Millisecond), ArgDict: map[string]any{"x": int64(i)}})
				require.NoError(t, err)
				ids = append(ids, rec["taskId"].(string))
			}
			require.NoError(t, h1.Stop(context.Background()))
			time.Sleep(time.Until(due.Add(500 * time.Millisecond))) // every task comes due while no host runs

			// Two hosts come back on Redis (one embedded: its data directory is its own).
			var hosts []*host.Host
			for i := range 1 + btoi(redisURL != "") {
				c := cfg
				if i > 0 {
					c.DataDir = t.TempDir()
				}
				h, err := host.New(c, backends.Open)
				require.NoError(t, err)
				require.NoError(t, h.Start(context.Background()))
				t.Cleanup(func() { require.NoError(t, h.Stop(context.Background())) })
				hosts = append(hosts, h)
			}
			for i, id := range ids {
				rec := waitTask(t, hosts[0], id, "success")
				require.Equal(t, map[string]any{"doubled": float64(2 * i), "taskId": id}, normalize(rec["result"]))
			}
			time.Sleep(300 * time.Millisecond)
			for _, id := range ids {
				runs := 0
				for _, h := range hosts {
					for _, r := range taskRows(t, h, id) {
						if r.Status == logstore.StatusRunning {
							runs++
						}
					}
				}
				require.Equal(t, 1, runs, "task %s ran once across the hosts", id)
				rec, err := hosts[0].Tasks().GetTask(context.Background(), id)
				require.NoError(t, err)
				require.EqualValues(t, 1, rec["attempt"], "task %s fired once", id)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestTicksOncePerCluster runs an interval template on three hosts sharing Redis: every tick
// is one task record, run by one host.
func TestTicksOncePerCluster(t *testing.T) {
	t.Parallel()
	url := os.Getenv("TRELLIS_TEST_REDIS")
	if url == "" {
		t.Skip(`TRELLIS_TEST_REDIS is not set: run eval "$(scripts/services.sh start)" first to run the cluster tests`)
	}
	dir := writeApp(t, map[string]string{
		"app.json":            fmt.Sprintf(`{"name": "ticks%d"}`, time.Now().UnixNano()),
		"tasks/Beat/e.json":   `{"title": "Beat", "type": "tasks.NormalType", "repeatType": "interval", "interval": "1s", "funcName": "beat"}`,
		"tasks/Beat/index.js": `exports.beat = function () { return 1; };`,
	})
	var hosts []*host.Host
	for range 3 {
		h, err := host.New(host.Config{AppDir: dir, DataDir: t.TempDir(), Sandbox: host.SandboxInProcess, ServeEvents: true, RedisURL: url, Workers: 1}, backends.Open)
		require.NoError(t, err)
		require.NoError(t, h.Start(context.Background()))
		t.Cleanup(func() { require.NoError(t, h.Stop(context.Background())) })
		hosts = append(hosts, h)
	}
	var page map[string]any
	require.Eventually(t, func() bool {
		var err error
		page, err = hosts[0].Tasks().ListTasks(context.Background(), timers.ListQuery{FullName: "tasks.Beat", PageSize: 1000})
		require.NoError(t, err)
		return page["totalCount"].(int64) >= 4
	}, 15*time.Second, 50*time.Millisecond)
	seen := map[string]bool{}
	for _, r := range page["rowDatas"].([]any) {
		at := r.(map[string]any)["startTime"].(string)
		require.False(t, seen[at], "tick %s ran twice", at)
		seen[at] = true
	}
}

// normalize turns a value into what a JSON round trip gives (numbers as float64), so results
// compare the same whichever sandbox and store made them.
func normalize(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

// TestTemplateEditsTakeEffectWithoutRestart disables an interval template through hot reload:
// its ticks stop; enabling it again brings them back.
func TestTemplateEditsTakeEffectWithoutRestart(t *testing.T) {
	t.Parallel()
	def := `{"title": "Beat", "type": "tasks.NormalType", "repeatType": "interval", "interval": "1s", "funcName": "beat", "enabled": %t}`
	h := setup(t, host.Config{Sandbox: host.SandboxInProcess, ServeEvents: true, Watch: true}, map[string]string{
		"app.json":            `{"name": "reload"}`,
		"tasks/Beat/e.json":   fmt.Sprintf(def, true),
		"tasks/Beat/index.js": `exports.beat = function () { return 1; };`,
	})
	count := func() int64 {
		page, err := h.Tasks().ListTasks(context.Background(), timers.ListQuery{FullName: "tasks.Beat"})
		require.NoError(t, err)
		return page["totalCount"].(int64)
	}
	require.Eventually(t, func() bool { return count() >= 1 }, 10*time.Second, 50*time.Millisecond)
	path := filepath.Join(h.Config().AppDir, "tasks", "Beat", "e.json")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(def, false)), 0o644))
	require.Eventually(t, func() bool {
		tm := h.Tasks().Templates()["tasks.Beat"]
		return tm != nil && !tm.Enabled
	}, 10*time.Second, 20*time.Millisecond)
	time.Sleep(1200 * time.Millisecond) // a tick in flight at the reload may still land
	stopped := count()
	time.Sleep(2500 * time.Millisecond)
	require.Equal(t, stopped, count(), "a disabled template does not tick")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(def, true)), 0o644))
	require.Eventually(t, func() bool { return count() > stopped }, 10*time.Second, 50*time.Millisecond, "enabled again, it ticks again")
}
