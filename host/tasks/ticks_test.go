package tasks_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/internal/parttest"
	"github.com/trellis-run/trellis/host/timers"
	"github.com/trellis-run/trellis/logstore"
)

// The tick tests run on the real clock: tasks.Options has no clock to give the scheduler (the
// recurring package's own tests drive it with a fake one), so they use the shortest schedules, a
// second, and wait on the rows each tick writes.

var tickApp = map[string]string{
	"tasks/Beat/e.json": `{"title": "Beat", "type": "tasks.NormalType", "repeatType": "interval", "interval": "1s",
		"funcName": "beat", "argDict": {"k": "v"}}`,
	"tasks/Beat/index.js":  `exports.beat = function (argDict, ctx) { return {args: argDict, taskId: ctx.taskId}; };`,
	"tasks/Every/e.json":   `{"title": "Every second", "type": "tasks.NormalType", "repeatType": "cron", "cron": "* * * * * *", "funcName": "tick"}`,
	"tasks/Every/index.js": `exports.tick = function () { return "tick"; };`,
	"tasks/Later/e.json": `{"title": "Later", "type": "tasks.NormalType", "repeatType": "interval", "interval": "1s", "enabled": false,
		"funcName": "later"}`,
	"tasks/Later/index.js": `exports.later = function () { return "later"; };`,
}

// doneTicks counts the done rows of each template.
func doneTicks(rows []logstore.Row) map[string]int {
	out := map[string]int{}
	for _, r := range rows {
		if r.Kind == logstore.KindTask && r.Stage == logstore.StageDone {
			out[r.FullName]++
		}
	}
	return out
}

// TestRecurringTicks: cron and interval templates tick through the coordinator, each tick a task
// record that runs once at its scheduled time; a disabled template does not tick until a reload
// enables it, and one disabled by a reload stops.
func TestRecurringTicks(t *testing.T) {
	t.Parallel()
	b := setup(t, tickApp)
	rows := b.log.Sink.Await(t, "two ticks of Beat and of Every", func(rows []logstore.Row) bool {
		n := doneTicks(rows)
		return n["tasks.Beat"] >= 2 && n["tasks.Every"] >= 2
	})
	require.Zero(t, doneTicks(rows)["tasks.Later"], "Later shares Beat's schedule but is disabled")

	var page []map[string]any
	require.Eventually(t, func() bool {
		var total int64
		total, page = b.listTasks(timers.ListQuery{FullName: "tasks.Beat", Status: timers.StatusSuccess})
		return total >= 2
	}, parttest.WaitLimit, 5*time.Millisecond)
	seen := map[string]bool{}
	var newest time.Time
	for _, rec := range page {
		id := rec["taskId"].(string)
		start := rec["startTime"].(string)
		require.False(t, seen[start], "one record per tick")
		seen[start] = true
		at, err := time.ParseInLocation("2006-01-02 15:04:05", start, b.loc)
		require.NoError(t, err)
		if at.After(newest) {
			newest = at
		}
		require.Equal(t, map[string]any{"args": map[string]any{"k": "v"}, "taskId": id}, rec["result"], "the template's argDict")
		require.EqualValues(t, 1, rec["attempt"])
		require.Equal(t, b.rec.Host(), rec["host"])
		require.Equal(t, "tasks.NormalType", rec["taskType"])
		require.True(t, strings.HasPrefix(rec["requestId"].(string), "req_"), "each tick is a request of its own")
		require.Equal(t, []string{"running/running", "success/done"}, stages(b.rows(id)), "a tick is created running: no scheduled row")
	}
	last, ok, err := b.coord.LastTick(b.ctx, "tasks.Beat")
	require.NoError(t, err)
	require.True(t, ok, "ticks are claimed through the coordinator")
	require.False(t, last.Before(newest), "the coordinator holds the latest claimed tick (%s, newest record %s)", last, newest)
	require.Zero(t, last.Nanosecond(), "interval ticks fall on whole multiples of the interval")

	// Reload: Later enabled, Beat disabled.
	beatBefore := doneTicks(b.log.Sink.All())["tasks.Beat"]
	b.reload(parttest.With(parttest.With(tickApp, "tasks/Later/e.json", strings.Replace(tickApp["tasks/Later/e.json"], `"enabled": false`, `"enabled": true`, 1)),
		"tasks/Beat/e.json", strings.Replace(tickApp["tasks/Beat/e.json"], `"interval": "1s",`, `"interval": "1s", "enabled": false,`, 1)))
	rows = b.log.Sink.Await(t, "two ticks of Later after the reload", func(rows []logstore.Row) bool {
		return doneTicks(rows)["tasks.Later"] >= 2
	})
	require.LessOrEqual(t, doneTicks(rows)["tasks.Beat"], beatBefore+1, "Beat stopped (but for a tick in flight at the reload)")
}
