package tasks_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/internal/parttest"
	"github.com/trellis-run/trellis/host/retry"
	"github.com/trellis-run/trellis/host/tasks"
)

// templateApp has templates of every repeatType, one of them an instance of a user Type built on
// tasks.Meta (which has no repeatType field of its own).
var templateApp = map[string]string{
	"app.json":            `{"name": "templates", "timezone": "Asia/Shanghai"}`,
	"tasks/Once/e.json":   `{"title": "Once", "type": "tasks.NormalType", "funcName": "run"}`,
	"tasks/Once/index.js": `exports.run = function () {};`,
	"tasks/Nightly/e.json": `{"title": "Nightly backup", "type": "tasks.NormalType", "repeatType": "cron", "cron": "0 3 * * *",
		"timezone": "Europe/Paris", "misfire": "skip", "concurrency": "discard", "argDict": {"k": "v"}, "timeout": "5m", "enabled": false,
		"funcName": "services.Echo.echo"}`,
	"tasks/Beat/e.json":   `{"title": "Heartbeat", "type": "tasks.NormalType", "repeatType": "interval", "interval": "90s", "funcName": "services.Echo.echo"}`,
	"models/Order/e.json": `{"title": "Order", "type": "models.NormalType", "fields": [{"name": "dueAt", "type": "Datetime"}]}`,
	"tasks/Remind/e.json": `{"title": "Remind before due", "type": "tasks.NormalType", "repeatType": "dateField",
		"dateField": {"model": "models.Order", "field": "dueAt", "offset": "-1h30m"}, "funcName": "services.Echo.echo"}`,
	"tasks/Kind/e.json":      `{"title": "A kind of task", "type": "tasks.Meta", "schema": {}}`,
	"tasks/Custom/e.json":    `{"title": "Custom", "type": "tasks.Kind", "funcName": "services.Echo.echo"}`,
	"services/Echo/e.json":   `{"title": "Echo", "type": "services.NormalType"}`,
	"services/Echo/index.js": `exports.echo = function (argDict) { return argDict; };`,
}

func TestTemplateList(t *testing.T) {
	t.Parallel()
	s := loadApp(t, templateApp)
	info := map[string]tasks.TemplateInfo{
		"tasks.Beat":    {Title: "Heartbeat", TaskType: "tasks.NormalType", RepeatType: tasks.RepeatInterval, FullName: "tasks.Beat"},
		"tasks.Custom":  {Title: "Custom", TaskType: "tasks.Kind", RepeatType: tasks.RepeatOnce, FullName: "tasks.Custom"},
		"tasks.Nightly": {Title: "Nightly backup", TaskType: "tasks.NormalType", RepeatType: tasks.RepeatCron, FullName: "tasks.Nightly"},
		"tasks.Once":    {Title: "Once", TaskType: "tasks.NormalType", RepeatType: tasks.RepeatOnce, FullName: "tasks.Once"},
		"tasks.Remind":  {Title: "Remind before due", TaskType: "tasks.NormalType", RepeatType: tasks.RepeatDateField, FullName: "tasks.Remind"},
	}
	cases := []struct {
		query string
		want  []string
	}{
		{"", []string{"tasks.Beat", "tasks.Custom", "tasks.Nightly", "tasks.Once", "tasks.Remind"}}, // instances only, by fullName
		{"tasks.", []string{"tasks.Beat", "tasks.Custom", "tasks.Nightly", "tasks.Once", "tasks.Remind"}},
		{"night", []string{"tasks.Nightly"}},
		{"BACKUP", []string{"tasks.Nightly"}},    // the title, case-insensitively
		{"TASKS.ONCE", []string{"tasks.Once"}},   // the fullName, case-insensitively
		{"before due", []string{"tasks.Remind"}}, // words of the title
		{"kind", nil},                            // a Type is not a template
		{"zzz", nil},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			t.Parallel()
			want := []tasks.TemplateInfo{}
			for _, n := range tc.want {
				want = append(want, info[n])
			}
			require.Equal(t, want, tasks.TemplateList(s, tc.query), "no match is [], not null")
		})
	}
}

func TestTemplatesOf(t *testing.T) {
	t.Parallel()
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	paris, err := time.LoadLocation("Europe/Paris")
	require.NoError(t, err)
	s := loadApp(t, templateApp)
	ts := tasks.TemplatesOf(s, shanghai)
	require.Len(t, ts, 5)
	for name, tm := range ts {
		require.NotEmpty(t, tm.Version, name)
		tm.Version = ""
	}

	require.Equal(t, &tasks.Template{FullName: "tasks.Once", Title: "Once", TaskType: "tasks.NormalType", RepeatType: tasks.RepeatOnce,
		Location: shanghai, FuncName: "run", ArgDict: map[string]any{}, Timeout: 30 * time.Second, Misfire: "fireOnce", Concurrency: "serial",
		Retry: retry.Policy{Policy: retry.None, Interval: 5 * time.Minute, MaxAttempts: 1}, Enabled: true}, ts["tasks.Once"],
		"the defaults (no retry); the app's timezone")
	require.Equal(t, &tasks.Template{FullName: "tasks.Nightly", Title: "Nightly backup", TaskType: "tasks.NormalType", RepeatType: tasks.RepeatCron,
		Cron: "0 3 * * *", Location: paris, FuncName: "services.Echo.echo", ArgDict: map[string]any{"k": "v"}, Timeout: 5 * time.Minute,
		Misfire: "skip", Concurrency: "discard", Retry: retry.Policy{Policy: retry.None, Interval: 5 * time.Minute, MaxAttempts: 1}},
		ts["tasks.Nightly"], "its own timezone")
	require.Equal(t, 90*time.Second, ts["tasks.Beat"].Interval)
	require.Equal(t, &tasks.DateField{Model: "models.Order", Field: "dueAt", Offset: -90 * time.Minute}, ts["tasks.Remind"].DateField, "a negative offset")
	require.Equal(t, "tasks.Kind", ts["tasks.Custom"].TaskType)
	require.Equal(t, tasks.RepeatOnce, ts["tasks.Custom"].RepeatType)

	// Version: the same definition gives the same version; any change of it, or of the timezone
	// it runs in, a new one.
	version := func(files map[string]string, loc *time.Location, name string) string {
		return tasks.TemplatesOf(loadApp(t, files), loc)[name].Version
	}
	base := version(templateApp, shanghai, "tasks.Beat")
	require.Equal(t, base, version(templateApp, shanghai, "tasks.Beat"))
	require.NotEqual(t, base, version(parttest.With(templateApp, "tasks/Beat/e.json",
		`{"title": "Heartbeat", "type": "tasks.NormalType", "repeatType": "interval", "interval": "2m", "funcName": "services.Echo.echo"}`), shanghai, "tasks.Beat"))
	require.NotEqual(t, base, version(templateApp, time.UTC, "tasks.Beat"), "the app's timezone is part of the version")
	require.Equal(t, version(templateApp, shanghai, "tasks.Nightly"), version(templateApp, time.UTC, "tasks.Nightly"),
		"a template with a timezone of its own does not change with the app's")
}

// TestTemplateArgDictKeepsBigIntegers: a cron or interval template's argDict comes from its
// e.json; an id above 2^53 there must reach the function exactly, as it does through
// createTimerTask.
func TestTemplateArgDictKeepsBigIntegers(t *testing.T) {
	t.Parallel()
	s := loadApp(t, map[string]string{
		"tasks/Big/e.json": `{"title": "Big", "type": "tasks.NormalType", "repeatType": "interval", "interval": "1h",
			"funcName": "services.Echo.echo", "argDict": {"id": 9007199254740993}}`,
		"services/Echo/e.json":   `{"title": "Echo", "type": "services.NormalType"}`,
		"services/Echo/index.js": `exports.echo = function (argDict) { return argDict; };`,
	})
	require.Equal(t, map[string]any{"id": big}, tasks.TemplatesOf(s, time.UTC)["tasks.Big"].ArgDict)
}
