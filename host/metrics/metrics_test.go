package metrics_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/host/metrics"
	"github.com/trellis-run/trellis/logstore"
	"github.com/trellis-run/trellis/logstore/writer"
)

func row(kind, fullName, status, stage string, created, recorded time.Time, ran time.Duration) logstore.Row {
	r := logstore.Row{Kind: kind, FullName: fullName, Status: status, Stage: stage, CreatedAt: created, RecordedAt: recorded}
	if ran > 0 {
		r.StartTime, r.EndTime = recorded.Add(-ran), recorded
	}
	return r
}

// Each row moves the counts its state says, once: a delivery sent, handled, a failed try, a
// dead letter, a task run, a duration; rows of states that are neither (a resume, a skip, a
// running row) move none.
func TestObserveRows(t *testing.T) {
	t.Parallel()
	c := metrics.New()
	t0 := time.Now()
	later := t0.Add(time.Second)
	const on = "events.OnOrder"
	c.ObserveRows(
		row(logstore.KindEvent, on, logstore.StatusWaiting, logstore.StageQueued, t0, t0, 0),     // sent
		row(logstore.KindEvent, on, logstore.StatusWaiting, logstore.StageQueued, t0, later, 0),  // resumed: not sent again
		row(logstore.KindEvent, on, logstore.StatusRunning, logstore.StageRunning, t0, later, 0), // nothing
		row(logstore.KindEvent, on, logstore.StatusSuccess, logstore.StageDone, t0, later, 20*time.Millisecond),
		row(logstore.KindEvent, on, logstore.StatusWaiting, logstore.StageRetryScheduled, t0, later, 3*time.Second),
		row(logstore.KindEvent, on, logstore.StatusFail, logstore.StageDeadLettered, t0, later, time.Second),
		row(logstore.KindEvent, on, logstore.StatusSuccess, logstore.StageSkipped, t0, later, 0), // an operation
		row(logstore.KindEvent, on, logstore.StatusWaiting, logstore.StageResent, t0, later, 0),  // sent again
		row(logstore.KindTask, "tasks.Nightly", logstore.StatusSuccess, logstore.StageDone, t0, later, time.Millisecond),
		row(logstore.KindTask, "tasks.Nightly", logstore.StatusFail, logstore.StageFailed, t0, later, time.Millisecond),
		row(logstore.KindTask, "tasks.Nightly", logstore.StatusFail, logstore.StageForcedEnd, t0, later, 0),
		row(logstore.KindService, "services.S", logstore.StatusSuccess, logstore.StageDone, t0, later, 2*time.Millisecond),
	)
	expect := `
# HELP trellis_events_sent_total Deliveries this host queued for each listener: new events and resends (a broadcast counts once).
# TYPE trellis_events_sent_total counter
trellis_events_sent_total{listener="events.OnOrder"} 2
# HELP trellis_events_handled_total Deliveries whose handler ran to success on this host, per listener (a callback's success included).
# TYPE trellis_events_handled_total counter
trellis_events_handled_total{listener="events.OnOrder"} 1
# HELP trellis_events_failed_total Tries that failed on this host, per listener: each retried, requeued or dead-lettered try, and failed or late callbacks.
# TYPE trellis_events_failed_total counter
trellis_events_failed_total{listener="events.OnOrder"} 2
# HELP trellis_dead_letters_total Deliveries dead-lettered on this host after their last try, per listener.
# TYPE trellis_dead_letters_total counter
trellis_dead_letters_total{listener="events.OnOrder"} 1
# HELP trellis_task_runs_total Task function runs on this host, per task template and outcome (success, fail, retry: failed and scheduled again).
# TYPE trellis_task_runs_total counter
trellis_task_runs_total{outcome="fail",task="tasks.Nightly"} 1
trellis_task_runs_total{outcome="success",task="tasks.Nightly"} 1
`
	require.NoError(t, testutil.GatherAndCompare(c.Registry(), strings.NewReader(expect),
		"trellis_events_sent_total", "trellis_events_handled_total", "trellis_events_failed_total", "trellis_dead_letters_total", "trellis_task_runs_total"))

	// Durations: one observation per run, by kind and status, in seconds.
	n, err := testutil.GatherAndCount(c.Registry(), "trellis_execution_duration_seconds")
	require.NoError(t, err)
	require.Equal(t, 6, n, "event success, waiting and fail; task success and fail; service success")
	out := gather(t, c)
	require.Contains(t, out, `trellis_execution_duration_seconds_count{kind="event",status="waiting"} 1`)
	require.Contains(t, out, `trellis_execution_duration_seconds_sum{kind="event",status="waiting"} 3`)
	require.Contains(t, out, `trellis_execution_duration_seconds_bucket{kind="event",status="success",le="0.025"} 1`)
	require.Contains(t, out, `trellis_execution_duration_seconds_bucket{kind="event",status="success",le="0.01"} 0`)
}

func TestWorkerExitsAndGauges(t *testing.T) {
	t.Parallel()
	c := metrics.New()
	c.WorkerExit(true, "timeout")
	c.WorkerExit(true, "memory_limit")
	c.WorkerExit(false, "")
	out := gather(t, c)
	require.Contains(t, out, "trellis_sandbox_worker_restarts_total 3")
	require.Contains(t, out, `trellis_sandbox_worker_kills_total{code="timeout"} 1`)
	require.Contains(t, out, `trellis_sandbox_worker_kills_total{code="memory_limit"} 1`)
	require.NotContains(t, out, "trellis_listener_lag", "no source yet: no lag")

	lagErr := error(nil)
	c.Watch(metrics.Sources{
		Lag: func(context.Context) (map[string][]bus.GroupLag, error) {
			return map[string][]bus.GroupLag{"events.OnOrder": {{Group: "pool", Pending: 3, Undelivered: 7}}}, lagErr
		},
		Spool: func() (writer.Stats, bool) {
			return writer.Stats{SpooledRows: 5, SpooledBytes: 512, Inserted: 40}, true
		},
	})
	out = gather(t, c)
	require.Contains(t, out, `trellis_listener_lag{group="pool",listener="events.OnOrder",state="pending"} 3`)
	require.Contains(t, out, `trellis_listener_lag{group="pool",listener="events.OnOrder",state="undelivered"} 7`)
	require.Contains(t, out, "trellis_listener_lag_up 1")
	require.Contains(t, out, "trellis_log_spool_rows 5")
	require.Contains(t, out, "trellis_log_spool_bytes 512")
	require.Contains(t, out, "trellis_log_rows_inserted_total 40")
	lagErr = errors.New("bus down")
	require.Contains(t, gather(t, c), "trellis_listener_lag_up 0", "a bus that does not answer shows")
	require.Contains(t, gather(t, c), "go_goroutines", "the Go runtime's metrics are there too")
}

// gather is the text a scrape of the collector's registry answers.
func gather(t *testing.T, c *metrics.Collector) string {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(c.Registry(), promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Equal(t, 200, rec.Code, rec.Body.String())
	return rec.Body.String()
}
