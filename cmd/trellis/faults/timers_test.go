package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// timerApp is a one-shot task template whose function writes a row to PostgreSQL at each run:
// the task's id, the due time its argDict carries, when it ran (the machine's clock, read by
// JavaScript) and the attempt.
var timerApp = map[string]string{
	"models/Fired/e.json": `{"title": "Fired", "type": "models.NormalType", "fields": [
		{"name": "id", "type": "AutoInt"}, {"name": "taskId", "type": "Stext"},
		{"name": "due", "type": "Integer"}, {"name": "firedAt", "type": "Integer"}, {"name": "attempt", "type": "Integer"}]}`,
	"tasks/Fire/e.json": `{"title": "Fire", "type": "tasks.NormalType", "repeatType": "once", "funcName": "fire"}`,
	"tasks/Fire/index.js": `exports.fire = function (argDict, ctx) {
		app.getElement("models.Fired").create({taskId: ctx.taskId, due: argDict.due, firedAt: Date.now(), attempt: ctx.attempt});
		return argDict.due;
	};`,
}

// createTimers makes n one-shot tasks through POST /api/tasks (createTimerTask) on the live
// hosts, task i due at dues(i) (whole seconds, epoch ms), and returns task id → due.
func (c *cluster) createTimers(n int, due func(i int) int64) map[string]int64 {
	c.t.Helper()
	out := map[string]int64{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan int)
	hosts := c.live()
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := range work {
				d := due(i)
				code, body, err := hosts[(w+i)%len(hosts)].do(context.Background(), "POST", "/api/tasks", map[string]any{
					"fullName": "tasks.Fire", "startTime": d, "funcName": "fire", "taskType": "tasks.NormalType", "argDict": map[string]any{"due": d}})
				var res struct {
					TaskID string `json:"taskId"`
				}
				if err == nil && code != http.StatusOK {
					err = fmt.Errorf("POST /api/tasks answered %d: %s", code, body)
				}
				if err == nil {
					err = json.Unmarshal(body, &res)
				}
				if err != nil {
					errs <- err
					continue
				}
				mu.Lock()
				out[res.TaskID] = d
				mu.Unlock()
			}
		}(w)
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(c.t, err)
	}
	require.Len(c.t, out, n)
	return out
}

// fired is one run of a task, as the task's function recorded it.
type fired struct {
	due, at int64
	attempt int
}

// fired reads every run the task function recorded, by task id.
func (c *cluster) fired() map[string][]fired {
	c.t.Helper()
	if c.fires == nil {
		c.fires = c.pgConn()
	}
	pg := c.fires
	out := map[string][]fired{}
	var exists bool
	require.NoError(c.t, pg.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM trellis_models WHERE model = 'models.Fired')`).Scan(&exists))
	if !exists {
		return out
	}
	rows, err := pg.Query(context.Background(), `SELECT "taskId", due, "firedAt", attempt FROM `+c.modelTable(pg, "models.Fired"))
	require.NoError(c.t, err)
	defer rows.Close()
	for rows.Next() {
		var id string
		var f fired
		require.NoError(c.t, rows.Scan(&id, &f.due, &f.at, &f.attempt))
		out[id] = append(out[id], f)
	}
	require.NoError(c.t, rows.Err())
	return out
}

func total(m map[string][]fired) int {
	n := 0
	for _, runs := range m {
		n += len(runs)
	}
	return n
}

// nextSecond is the first whole second at least d from now, in epoch milliseconds.
func nextSecond(d time.Duration) int64 {
	return time.Now().Add(d).Truncate(time.Second).Add(time.Second).UnixMilli()
}

// TestTimersDueWhileEveryHostIsDown: 1,000 one-shot tasks made through the HTTP API of three
// hosts come due while every host is down (each process group killed with -9) for 60 s. When
// the hosts start again, on fresh data directories, each task must run exactly once — one run,
// attempt 1 — and none before its due time; their records end success.
func TestTimersDueWhileEveryHostIsDown(t *testing.T) {
	s := need(t)
	const (
		timers = 1000
		down   = 60 * time.Second
	)
	c := newCluster(t, clusterConfig{redis: s.redis, clickhouse: s.clickhouse, postgres: s.postgres, files: timerApp,
		args: []string{"--workers", "1", "--lag-every", "0"}})
	for i := 0; i < 3; i++ {
		c.start(i)
	}
	first := nextSecond(20 * time.Second)
	began := time.Now()
	tasks := c.createTimers(timers, func(i int) int64 { return first + int64(i%30)*1000 })
	made := time.Since(began)
	require.Less(t, time.Now().UnixMilli(), first-2000, "making %d tasks took %s: too slow for them to come due only after the hosts are down", timers, made)
	require.Zero(t, total(c.fired()), "a task fired before its due time")
	for i := 0; i < 3; i++ {
		c.killHost(i)
	}
	killed := time.Now()
	t.Logf("%d tasks made in %s, due from %s to %s; every host killed at %s", timers, made.Round(time.Millisecond),
		time.UnixMilli(first).Format("15:04:05"), time.UnixMilli(first+29_000).Format("15:04:05"), killed.Format("15:04:05.000"))
	require.Less(t, killed.UnixMilli(), first)
	time.Sleep(time.Until(killed.Add(down)))
	require.Zero(t, total(c.fired()), "a task ran while every host was down")

	restarted := time.Now()
	for i := 0; i < 3; i++ {
		c.start(i)
	}
	all := waitFor(t, 2*time.Minute, 250*time.Millisecond, "every task fired after the hosts came back", func() bool {
		return total(c.fired()) >= timers
	})
	// A double run would come from a claim taken twice: wait a while longer for one.
	time.Sleep(5 * time.Second)
	runs := c.fired()
	twice, early := 0, 0
	for id, due := range tasks {
		r := runs[id]
		require.NotEmpty(t, r, "task %s (due %s) never ran", id, time.UnixMilli(due).Format("15:04:05"))
		if len(r) > 1 {
			twice++
			t.Errorf("task %s ran %d times: %+v", id, len(r), r)
		}
		require.Equal(t, 1, r[0].attempt, "task %s", id)
		require.Equal(t, due, r[0].due)
		if r[0].at < due {
			early++
			t.Errorf("task %s ran %d ms before its due time", id, due-r[0].at)
		}
		require.GreaterOrEqual(t, r[0].at, restarted.UnixMilli(), "task %s ran before the hosts came back", id)
	}
	require.Len(t, runs, timers, "runs of tasks nobody made")
	var page struct {
		TotalCount int64 `json:"totalCount"`
	}
	c.get(c.any(), "/api/tasks?"+query("fullName", "tasks.Fire", "status", "success", "pageSize", "1"), &page)
	require.EqualValues(t, timers, page.TotalCount, "task records ended success")

	figure(t, "timers", fmt.Sprintf("%d, due while every host was down for %s", timers, down))
	figure(t, "ran exactly once", timers-twice)
	figure(t, "ran twice", twice)
	figure(t, "ran early", early)
	figure(t, "all ran after the restart", all.Round(100*time.Millisecond))
}

// TestSkewedClockFiresNothingEarly: a host whose clock runs 30 s ahead (the runner's clock, moved
// by TRELLIS_CLOCK_SKEW: Go binaries ignore libfaketime) is alone with 100 tasks due over the next
// 35 s; none may run before its due time by the machine's true clock. A due time judged by the
// host's own clock runs them up to 30 s early; one judged by Redis's clock (TIME) does not.
func TestSkewedClockFiresNothingEarly(t *testing.T) {
	s := need(t)
	const (
		timers = 100
		skew   = 30 * time.Second
	)
	c := newCluster(t, clusterConfig{redis: s.redis, clickhouse: s.clickhouse, postgres: s.postgres, files: timerApp,
		args: []string{"--workers", "1", "--lag-every", "0"}})
	c.start(0, "TRELLIS_CLOCK_SKEW="+skew.String())
	first := nextSecond(5 * time.Second)
	tasks := c.createTimers(timers, func(i int) int64 { return first + int64(i%30)*1000 })
	last := first + 29_000
	waitFor(t, time.Until(time.UnixMilli(last))+time.Minute, 250*time.Millisecond, "every task fired", func() bool {
		return total(c.fired()) >= timers
	})
	runs := c.fired()
	early := 0
	var earliest int64
	for id, due := range tasks {
		r := runs[id]
		require.Len(t, r, 1, "task %s", id)
		if d := due - r[0].at; d > 0 {
			early++
			earliest = max(earliest, d)
		}
	}
	figure(t, "timers on a host 30 s ahead", timers)
	figure(t, "ran early", fmt.Sprintf("%d (the earliest %d ms before its due time)", early, earliest))
	require.Zero(t, early, "tasks ran before their due time on a host whose clock runs %s ahead (the earliest by %d ms): "+
		"the runner judges due times by the host's clock (timers.RunnerOptions.Now → redistimers claimScript ARGV now), not Redis's", skew, earliest)
}
