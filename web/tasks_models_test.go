package web

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
)

var tasksApp = map[string]string{
	"app.json":            `{"name": "webtasks"}`,
	"tasks/Once/e.json":   `{"title": "Once", "type": "tasks.NormalType", "funcName": "run"}`,
	"tasks/Once/index.js": `exports.run = function (argDict) { return argDict.n + 1; };`,
	"models/Item/e.json":  `{"title": "Item", "type": "models.NormalType", "fields": [{"name": "name", "type": "Stext"}, {"name": "qty", "type": "Integer"}]}`,
}

func TestTaskRoutes(t *testing.T) {
	t.Parallel()
	h := setupApp(t, host.SandboxInProcess, tasksApp, true)
	later := time.Now().Add(time.Hour).UnixMilli()
	for _, sc := range []scenario{
		{name: "templates", method: "GET", path: "/api/tasks/templates?q=onc", wantStatus: 200, wantIn: []string{`"fullName":"tasks.Once"`, `"repeatType":"once"`}},
		{name: "templates none", method: "GET", path: "/api/tasks/templates?q=zzz", wantStatus: 200, wantIn: []string{`[]`}},
		{name: "create bad json", method: "POST", path: "/api/tasks", body: `{`, wantStatus: 400, wantIn: []string{"not valid JSON"}},
		{name: "create not object", method: "POST", path: "/api/tasks", body: `[1]`, wantStatus: 400, wantIn: []string{"JSON object"}},
		{name: "create unknown field", method: "POST", path: "/api/tasks", body: `{"fullName": "tasks.Once", "colour": 1}`, wantStatus: 400, wantIn: []string{`unknown field \"colour\"`}},
		{name: "create unknown template", method: "POST", path: "/api/tasks", body: fmt.Sprintf(`{"fullName": "tasks.Nope", "startTime": %d, "funcName": "run", "taskType": "tasks.NormalType", "argDict": {}}`, later), wantStatus: 404, wantIn: []string{"tasks.Nope"}},
		{name: "create unknown func", method: "POST", path: "/api/tasks", body: fmt.Sprintf(`{"fullName": "tasks.Once", "startTime": %d, "funcName": "nope", "taskType": "tasks.NormalType", "argDict": {}}`, later), wantStatus: 404, wantIn: []string{"no function nope"}},
		{name: "create bad time", method: "POST", path: "/api/tasks", body: `{"fullName": "tasks.Once", "startTime": "soon", "funcName": "run", "taskType": "tasks.NormalType", "argDict": {}}`, wantStatus: 400, wantIn: []string{"startTime"}},
		{name: "create argDict not object", method: "POST", path: "/api/tasks", body: fmt.Sprintf(`{"fullName": "tasks.Once", "startTime": %d, "funcName": "run", "taskType": "tasks.NormalType", "argDict": "x"}`, later), wantStatus: 400, wantIn: []string{"argDict must be an object"}},
		{name: "get unknown", method: "GET", path: "/api/tasks/task_nope", wantStatus: 404},
		{name: "get hostile id", method: "GET", path: "/api/tasks/..%2F..%2Fetc", wantStatus: 400},
		{name: "forcedEnd unknown", method: "POST", path: "/api/tasks/task_nope/forcedEnd", wantStatus: 404},
		{name: "unknown op", method: "POST", path: "/api/tasks/task_nope/explode", wantStatus: 404, wantIn: []string{"forcedEnd"}},
		{name: "list bad status", method: "GET", path: "/api/tasks?status=done", wantStatus: 400, wantIn: []string{"waiting, paused, running"}},
		{name: "list bad page", method: "GET", path: "/api/tasks?page=x", wantStatus: 400},
	} {
		t.Run(sc.name, func(t *testing.T) { run(t, h, sc) })
	}

	// Create, read, list, force-end, and one that runs.
	rec := run(t, h, scenario{method: "POST", path: "/api/tasks", body: fmt.Sprintf(`{"fullName": "tasks.Once", "startTime": %d, "funcName": "run", "taskType": "tasks.NormalType", "argDict": {"n": 1}}`, later), wantStatus: 200, wantIn: []string{`"status":"waiting"`}})
	var task map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &task))
	id := task["taskId"].(string)
	run(t, h, scenario{method: "GET", path: "/api/tasks/" + id, wantStatus: 200, wantIn: []string{`"argDict":{"n":1}`}})
	run(t, h, scenario{method: "GET", path: "/api/tasks?fullName=tasks.Once&status=waiting", wantStatus: 200, wantIn: []string{`"totalCount":1`, id}})
	run(t, h, scenario{method: "POST", path: "/api/tasks/" + id + "/forcedEnd", wantStatus: 200, wantIn: []string{`"status":"forcedEnd"`}})
	run(t, h, scenario{method: "POST", path: "/api/tasks/" + id + "/forcedEnd", wantStatus: 409, wantIn: []string{"conflict"}})

	rec = run(t, h, scenario{method: "POST", path: "/api/tasks", body: `{"fullName": "tasks.Once", "startTime": "2020-01-01 00:00:00", "funcName": "run", "taskType": "tasks.NormalType", "argDict": {"n": 41}}`, wantStatus: 200})
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &task))
	require.Eventually(t, func() bool {
		rec := run(t, h, scenario{method: "GET", path: "/api/tasks/" + task["taskId"].(string), wantStatus: 200})
		return json.Unmarshal(rec.Body.Bytes(), &task) == nil && task["status"] == "success"
	}, 10*time.Second, 20*time.Millisecond)
	require.EqualValues(t, 42, task["result"])
}

func TestModelRoutes(t *testing.T) {
	t.Parallel()
	h := setupApp(t, host.SandboxInProcess, tasksApp, false)
	rec := run(t, h, scenario{method: "POST", path: "/api/models/models.Item/rows", body: `{"name": "bolt", "qty": 3}`, wantStatus: 200, wantIn: []string{`"name":"bolt"`}})
	var row map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &row))
	id := fmt.Sprint(row["id"])
	for _, sc := range []scenario{
		{name: "get", method: "GET", path: "/api/models/models.Item/rows/" + id, wantStatus: 200, wantIn: []string{`"qty":3`}},
		{name: "patch", method: "PATCH", path: "/api/models/models.Item/rows/" + id, body: `{"qty": 4}`, wantStatus: 200, wantIn: []string{`"qty":4`}},
		{name: "import", method: "POST", path: "/api/models/models.Item/rows", body: `[{"name": "nut", "qty": 10}, {"name": "washer", "qty": 20}]`, wantStatus: 200, wantIn: []string{`"imported":2`}},
		{name: "query", method: "GET", path: `/api/models/models.Item/rows?filter={"qty":{"gte":10}}&orderBy=-qty`, wantStatus: 200, wantIn: []string{`"totalCount":2`, `"washer"`}},
		{name: "query bad filter json", method: "GET", path: `/api/models/models.Item/rows?filter={`, wantStatus: 400, wantIn: []string{"filter"}},
		{name: "query unknown field", method: "GET", path: `/api/models/models.Item/rows?filter={"colour":"red"}`, wantStatus: 400, wantIn: []string{"colour"}},
		{name: "query page too big", method: "GET", path: `/api/models/models.Item/rows?pageSize=5000`, wantStatus: 400},
		{name: "create wrong type", method: "POST", path: "/api/models/models.Item/rows", body: `{"name": "x", "qty": "many"}`, wantStatus: 400, wantIn: []string{"qty"}},
		{name: "create unknown field", method: "POST", path: "/api/models/models.Item/rows", body: `{"colour": "red"}`, wantStatus: 400, wantIn: []string{"colour"}},
		{name: "create scalar", method: "POST", path: "/api/models/models.Item/rows", body: `7`, wantStatus: 400},
		{name: "import with a bad row stores none", method: "POST", path: "/api/models/models.Item/rows", body: `[{"name": "ok"}, {"qty": "bad"}]`, wantStatus: 400},
		{name: "unknown model", method: "GET", path: "/api/models/models.Nope/rows", wantStatus: 404},
		{name: "hostile model", method: "GET", path: "/api/models/..%2Fetc/rows", wantStatus: 400},
		{name: "bad id", method: "GET", path: "/api/models/models.Item/rows/abc", wantStatus: 400},
		{name: "unknown id", method: "GET", path: "/api/models/models.Item/rows/99999", wantStatus: 404},
		{name: "delete", method: "DELETE", path: "/api/models/models.Item/rows/" + id, wantStatus: 200, wantIn: []string{`"name":"bolt"`}},
		{name: "delete again", method: "DELETE", path: "/api/models/models.Item/rows/" + id, wantStatus: 404},
		{name: "count after", method: "GET", path: "/api/models/models.Item/rows", wantStatus: 200, wantIn: []string{`"totalCount":2`}},
	} {
		run(t, h, sc)
	}
}

var templatesApp = map[string]string{
	"app.json": `{"name": "webtemplates"}`,
	"tasks/Hourly/e.json": "{\n  \"title\": \"Hourly\",\n  \"type\": \"tasks.NormalType\",\n  \"repeatType\": \"interval\",\n  \"interval\": \"1h\",\n" +
		"  \"funcName\": \"run\",\n  \"argDict\": {\"n\": 9007199254740993}\n}\n",
	"tasks/Hourly/index.js": `exports.run = function (argDict) { return String(argDict.n); };`,
	"services/Svc/e.json":   `{"title": "Svc", "type": "services.NormalType"}`,
	"services/Svc/index.js": `exports.f = function () { return 1; };`,
}

// TestTemplateRoutes: the task console's templates: their states, enable and disable (an edit of
// e.json, validated and hot-reloaded), and run now (a task due at once with the template's
// argDict, exact past 2^53, or the one given).
func TestTemplateRoutes(t *testing.T) {
	t.Parallel()
	h, dir := setupEditing(t, templatesApp, func(c *host.Config) { c.ServeEvents = true })
	run(t, h, scenario{method: "GET", path: "/api/tasks/templates", wantStatus: 200,
		wantIn: []string{`"fullName":"tasks.Hourly"`, `"enabled":true`, `"schedule":"every 1h"`, `"nextFireTime":"`, `"funcName":"run"`}})

	for _, sc := range []scenario{
		{name: "unknown op", method: "POST", path: "/api/tasks/templates/tasks.Hourly/explode", wantStatus: 404, wantIn: []string{"enable, disable or run"}},
		{name: "unknown template", method: "POST", path: "/api/tasks/templates/tasks.Nope/run", wantStatus: 404, wantIn: []string{"tasks.Nope"}},
		{name: "not a template", method: "POST", path: "/api/tasks/templates/services.Svc/disable", wantStatus: 404},
		{name: "hostile name", method: "POST", path: "/api/tasks/templates/..%2F..%2Fetc/enable", wantStatus: 400},
		{name: "run bad body", method: "POST", path: "/api/tasks/templates/tasks.Hourly/run", body: `{"argDict": 1, "x": 2}`, wantStatus: 400, wantIn: []string{`unknown field \"x\"`}},
		{name: "run argDict not object", method: "POST", path: "/api/tasks/templates/tasks.Hourly/run", body: `{"argDict": 1}`, wantStatus: 400, wantIn: []string{"argDict"}},
		{name: "no auth", method: "POST", path: "/api/tasks/templates/tasks.Hourly/disable", noAuth: true, wantStatus: 401},
	} {
		t.Run(sc.name, func(t *testing.T) { run(t, h, sc) })
	}
	before, err := os.ReadFile(filepath.Join(dir, "tasks/Hourly/e.json"))
	require.NoError(t, err)
	require.Equal(t, templatesApp["tasks/Hourly/e.json"], string(before), "refused operations write nothing")

	rec := run(t, h, scenario{method: "POST", path: "/api/tasks/templates/tasks.Hourly/disable", wantStatus: 200, wantIn: []string{`"enabled":false`}})
	require.NotContains(t, rec.Body.String(), "nextFireTime")
	after, err := os.ReadFile(filepath.Join(dir, "tasks/Hourly/e.json"))
	require.NoError(t, err)
	require.Equal(t, strings.Replace(templatesApp["tasks/Hourly/e.json"], "}\n}\n", "},\n  \"enabled\": false\n}\n", 1), string(after))
	run(t, h, scenario{method: "POST", path: "/api/tasks/templates/tasks.Hourly/enable", wantStatus: 200, wantIn: []string{`"enabled":true`, `"nextFireTime":"`}})

	// Run now, with the template's argDict, then with one given.
	for _, c := range []struct{ body, want string }{{"", "9007199254740993"}, {`{"argDict": {"n": 7}}`, "7"}} {
		rec = run(t, h, scenario{method: "POST", path: "/api/tasks/templates/tasks.Hourly/run", body: c.body, wantStatus: 200, wantIn: []string{`"fullName":"tasks.Hourly"`}})
		var task map[string]any
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &task))
		require.Eventually(t, func() bool {
			rec := run(t, h, scenario{method: "GET", path: "/api/tasks/" + task["taskId"].(string), wantStatus: 200})
			return json.Unmarshal(rec.Body.Bytes(), &task) == nil && task["status"] == "success"
		}, 10*time.Second, 20*time.Millisecond)
		require.Equal(t, c.want, task["result"])
	}
}

// TestTaskNodeOperations: the node operations reach a task node (its nodeId is its taskId)
// through POST /api/nodes/{nodeId}/{op}: pause holds it, resume lets it run when due, skip ends
// it; a state an operation does not allow is 409 naming the task's status.
func TestTaskNodeOperations(t *testing.T) {
	t.Parallel()
	h := setupApp(t, host.SandboxInProcess, tasksApp, true)
	create := func(start string, n int) string {
		rec := run(t, h, scenario{method: "POST", path: "/api/tasks", body: fmt.Sprintf(`{"fullName": "tasks.Once", "startTime": %s, "funcName": "run", "taskType": "tasks.NormalType", "argDict": {"n": %d}}`, start, n), wantStatus: 200})
		var task map[string]any
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &task))
		return task["taskId"].(string)
	}
	later := fmt.Sprint(time.Now().Add(time.Hour).UnixMilli())
	id := create(later, 1)
	run(t, h, scenario{method: "POST", path: "/api/nodes/" + id + "/resume", wantStatus: 409, wantIn: []string{"conflict", "it is waiting"}})
	run(t, h, scenario{method: "POST", path: "/api/nodes/" + id + "/pause", wantStatus: 200,
		wantIn: []string{`"status":"waiting"`, `"stage":"paused"`, `"taskStatus":"paused"`, `"nodeId":"` + id + `"`}})
	run(t, h, scenario{method: "GET", path: "/api/tasks?status=paused", wantStatus: 200, wantIn: []string{`"totalCount":1`, id}})
	run(t, h, scenario{method: "POST", path: "/api/nodes/" + id + "/pause", wantStatus: 409, wantIn: []string{"it is paused"}})
	run(t, h, scenario{method: "POST", path: "/api/nodes/" + id + "/skip", wantStatus: 200, wantIn: []string{`"stage":"skipped"`, `"taskStatus":"success"`}})
	run(t, h, scenario{method: "POST", path: "/api/nodes/" + id + "/forcedFail", wantStatus: 409, wantIn: []string{"it is success"}})

	// Paused, it does not run when due; resumed after its start time, it runs at once.
	start := time.Now().Add(time.Second)
	due := create(fmt.Sprint(start.UnixMilli()), 41)
	run(t, h, scenario{method: "POST", path: "/api/nodes/" + due + "/pause", wantStatus: 200})
	time.Sleep(time.Until(start) + 300*time.Millisecond)
	var task map[string]any
	run(t, h, scenario{method: "GET", path: "/api/tasks/" + due, wantStatus: 200, wantIn: []string{`"status":"paused"`}})
	run(t, h, scenario{method: "POST", path: "/api/nodes/" + due + "/resume", wantStatus: 200, wantIn: []string{`"taskStatus":"waiting"`}})
	require.Eventually(t, func() bool {
		rec := run(t, h, scenario{method: "GET", path: "/api/tasks/" + due, wantStatus: 200})
		return json.Unmarshal(rec.Body.Bytes(), &task) == nil && task["status"] == "success"
	}, 10*time.Second, 20*time.Millisecond)
	require.EqualValues(t, 42, task["result"])
	run(t, h, scenario{method: "POST", path: "/api/nodes/" + due + "/forcedFail", body: `{"reason": "late"}`, wantStatus: 409, wantIn: []string{"it is success"}})
}
