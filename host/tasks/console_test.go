package tasks_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/tasks"
	"github.com/trellis-run/trellis/host/timers"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

var consoleApp = map[string]string{
	"tasks/Daily/e.json": `{"title": "Daily", "type": "tasks.NormalType", "repeatType": "cron", "cron": "0 9 * * *",
		"timezone": "Asia/Shanghai", "funcName": "run", "argDict": {"big": 9007199254740993}}`,
	"tasks/Daily/index.js": `exports.run = function (argDict) { return {big: argDict.big, kind: typeof argDict.big}; };`,
	"tasks/Often/e.json":   `{"title": "Often", "type": "tasks.NormalType", "repeatType": "interval", "interval": "1h", "funcName": "run"}`,
	"tasks/Often/index.js": `exports.run = function () { return 1; };`,
	"tasks/Off/e.json":     `{"title": "Off", "type": "tasks.NormalType", "repeatType": "interval", "interval": "1h", "enabled": false, "funcName": "run"}`,
	"tasks/Off/index.js":   `exports.run = function () { return 1; };`,
	"tasks/Once/e.json":    `{"title": "Once", "type": "tasks.NormalType", "funcName": "run"}`,
	"tasks/Once/index.js":  `exports.run = function (argDict) { return argDict; };`,
	"tasks/NoFn/e.json":    `{"title": "No function", "type": "tasks.NormalType"}`,
	"models/Order/e.json":  `{"title": "Order", "type": "models.NormalType", "fields": [{"name": "dueAt", "type": "Datetime"}]}`,
	"tasks/Remind/e.json": `{"title": "Remind", "type": "tasks.NormalType", "repeatType": "dateField", "funcName": "run",
		"dateField": {"model": "models.Order", "field": "dueAt", "offset": "-30m"}}`,
	"tasks/Remind/index.js": `exports.run = function () { return 1; };`,
}

// TestTemplateStates: the console's template list says what each template runs, whether it is
// enabled, its schedule in words and, for enabled cron and interval templates, the next tick.
func TestTemplateStates(t *testing.T) {
	t.Parallel()
	b := setup(t, consoleApp)
	got := map[string]tasks.TemplateState{}
	for _, s := range b.center.TemplateStates("") {
		got[s.FullName] = s
	}
	require.Len(t, got, 6)

	daily := got["tasks.Daily"]
	require.Equal(t, "run", daily.FuncName)
	require.True(t, daily.Enabled)
	require.Equal(t, "cron 0 9 * * * (Asia/Shanghai)", daily.Schedule)
	next, err := vocab.ParseDatetime(daily.NextFireTime, b.loc)
	require.NoError(t, err, "nextFireTime %q", daily.NextFireTime)
	sh, _ := time.LoadLocation("Asia/Shanghai")
	require.Equal(t, 9, next.In(sh).Hour())
	require.WithinDuration(t, time.Now().Add(12*time.Hour), next, 12*time.Hour+time.Minute)

	often := got["tasks.Often"]
	require.Equal(t, "every 1h", often.Schedule)
	next, err = vocab.ParseDatetime(often.NextFireTime, b.loc)
	require.NoError(t, err)
	require.Equal(t, next.Truncate(time.Hour), next, "interval ticks are multiples of the interval")
	require.WithinDuration(t, time.Now().Add(30*time.Minute), next, 31*time.Minute)

	require.False(t, got["tasks.Off"].Enabled)
	require.Empty(t, got["tasks.Off"].NextFireTime, "a disabled template does not tick")
	require.Empty(t, got["tasks.Once"].Schedule)
	require.Empty(t, got["tasks.Once"].NextFireTime)
	require.Equal(t, "30m before models.Order.dueAt", got["tasks.Remind"].Schedule)
	require.Empty(t, got["tasks.Remind"].NextFireTime, "each row has its own task")

	only := b.center.TemplateStates("dail")
	require.Len(t, only, 1)
	require.Equal(t, "tasks.Daily", only[0].FullName)
}

// TestRunTemplateNow: "run now" is a timer task due at once with the template's function and
// argDict (exact past 2^53), or the argDict given; unknown templates and templates without a
// function are clear errors.
func TestRunTemplateNow(t *testing.T) {
	t.Parallel()
	b := setup(t, consoleApp)
	rec, err := b.center.RunTemplateNow(b.ctx, "tasks.Daily", nil)
	require.NoError(t, err)
	id := rec["taskId"].(string)
	b.awaitStage(id, logstore.StageDone)
	done := b.awaitStatus(id, timers.StatusSuccess)
	require.Equal(t, "run", done["funcName"])
	require.Equal(t, map[string]any{"big": big, "kind": "bigint"}, done["result"])

	rec, err = b.center.RunTemplateNow(b.ctx, "tasks.Once", map[string]any{"x": "given"})
	require.NoError(t, err)
	done = b.awaitStatus(rec["taskId"].(string), timers.StatusSuccess)
	require.Equal(t, map[string]any{"x": "given"}, done["result"])

	_, err = b.center.RunTemplateNow(b.ctx, "tasks.Nope", nil)
	require.ErrorIs(t, err, tasks.ErrNotFound)
	_, err = b.center.RunTemplateNow(b.ctx, "tasks.NoFn", nil)
	require.ErrorIs(t, err, tasks.ErrInvalidArgument)
	require.ErrorContains(t, err, "funcName")
}
