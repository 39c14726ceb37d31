// Package metrics is the host's Prometheus metrics, on the official client: what the execution
// log's rows say happened (deliveries sent, handled and failed per listener, dead letters,
// execution durations per element kind, task runs by outcome), the sandbox's worker restarts
// and kills, and gauges read at scrape time (each listener's lag, the log writer's spool).
//
// It observes what the parts already report and changes none of them: rows reach it once the
// log writer has taken them (the host wraps its sink), worker ends through the isolated pool's
// hook, gauges through functions the host hands it. It must not decide anything: no part reads
// a metric back. HTTP metrics are the web package's, registered on the same registry.
package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/logstore"
	"github.com/trellis-run/trellis/logstore/writer"
)

// namespace prefixes every metric of Trellis.
const namespace = "trellis"

// lagTimeout bounds the bus queries of one scrape: a slow bus must not hold the scrape past
// Prometheus's own timeout (10 s by default).
const lagTimeout = 5 * time.Second

// Sources are what the gauges read at scrape time. Either may be nil (or answer nothing) while
// the part is not running.
type Sources struct {
	// Lag is each listener's backlog per consumer group (host.Host.EventLag).
	Lag func(ctx context.Context) (map[string][]bus.GroupLag, error)
	// Spool is the log writer's counters; false while no writer runs.
	Spool func() (writer.Stats, bool)
}

// Collector is one host's metrics. Its methods are safe for concurrent use.
type Collector struct {
	reg *prometheus.Registry

	sent, handled, failed, deadLetters *prometheus.CounterVec
	durations                          *prometheus.HistogramVec
	taskRuns                           *prometheus.CounterVec
	workerRestarts                     prometheus.Counter
	workerKills                        *prometheus.CounterVec

	mu  sync.Mutex
	src Sources
}

// New makes a collector on a registry of its own, with the Go runtime's and the process's
// metrics beside Trellis's.
func New() *Collector {
	c := &Collector{reg: prometheus.NewRegistry()}
	perListener := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, []string{"listener"})
	}
	c.sent = perListener("events_sent_total", "Deliveries this host queued for each listener: new events and resends (a broadcast counts once).")
	c.handled = perListener("events_handled_total", "Deliveries whose handler ran to success on this host, per listener (a callback's success included).")
	c.failed = perListener("events_failed_total", "Tries that failed on this host, per listener: each retried, requeued or dead-lettered try, and failed or late callbacks.")
	c.deadLetters = perListener("dead_letters_total", "Deliveries dead-lettered on this host after their last try, per listener.")
	c.durations = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "execution_duration_seconds",
		Help: "How long executions ran, by element kind (event, task, service, hook) and status (success, fail, waiting: a failed try that will be retried).",
		// From a millisecond (a lookup) to the 30 s default time limit and past it.
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
	}, []string{"kind", "status"})
	c.taskRuns = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "task_runs_total",
		Help: "Task function runs on this host, per task template and outcome (success, fail, retry: failed and scheduled again)."}, []string{"task", "outcome"})
	c.workerRestarts = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "sandbox_worker_restarts_total",
		Help: "Isolated sandbox worker processes that ended while the pool ran and were replaced: killed, crashed or retired."})
	c.workerKills = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "sandbox_worker_kills_total",
		Help: "Isolated sandbox worker processes killed, by the error their execution got (timeout, memory_limit, stack_overflow, canceled, js_error: a crash)."}, []string{"code"})
	c.reg.MustRegister(c.sent, c.handled, c.failed, c.deadLetters, c.durations, c.taskRuns, c.workerRestarts, c.workerKills,
		gauges{c}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return c
}

// Registry is where the collector's metrics are, for GET /metrics and for other packages' own.
func (c *Collector) Registry() *prometheus.Registry { return c.reg }

// Watch sets what the gauges read.
func (c *Collector) Watch(s Sources) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.src = s
}

func (c *Collector) sources() Sources {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.src
}

// ObserveRows counts what rows the log writer took say happened. Each state of a node is one
// row, written once, so each count moves once per change of state.
func (c *Collector) ObserveRows(rows ...logstore.Row) {
	for i := range rows {
		r := &rows[i]
		switch r.Kind {
		case logstore.KindEvent:
			c.observeEvent(r)
		case logstore.KindTask:
			if ran(r) {
				outcome := map[string]string{logstore.StageDone: "success", logstore.StageFailed: "fail", logstore.StageRetryScheduled: "retry"}[r.Stage]
				if outcome != "" {
					c.taskRuns.WithLabelValues(r.FullName, outcome).Inc()
				}
			}
		}
		if ran(r) {
			c.durations.WithLabelValues(r.Kind, r.Status).Observe(r.EndTime.Sub(r.StartTime).Seconds())
		}
	}
}

func (c *Collector) observeEvent(r *logstore.Row) {
	l := r.FullName
	switch r.Stage {
	case logstore.StageQueued:
		// A node resumed after a pause is queued again, recorded later than it was created; a
		// sent one is recorded at the moment it is created.
		if r.RecordedAt.Equal(r.CreatedAt) {
			c.sent.WithLabelValues(l).Inc()
		}
	case logstore.StageBroadcast, logstore.StageResent:
		c.sent.WithLabelValues(l).Inc()
	case logstore.StageDone, logstore.StageCallback:
		c.handled.WithLabelValues(l).Inc()
	case logstore.StageRetryScheduled, logstore.StageRequeued, logstore.StageCallbackFailed, logstore.StageCallbackTimeout:
		c.failed.WithLabelValues(l).Inc()
	case logstore.StageDeadLettered:
		c.failed.WithLabelValues(l).Inc()
		c.deadLetters.WithLabelValues(l).Inc()
	}
}

// ran reports whether a row records the end of a run of code: a success, a failure, or a failed
// try that will be retried, with its start and end. Rows of operations (skip, forcedFail,
// pause) and of states before a run carry no run time.
func ran(r *logstore.Row) bool {
	if r.StartTime.IsZero() || r.EndTime.IsZero() || r.EndTime.Before(r.StartTime) {
		return false
	}
	switch r.Stage {
	case logstore.StageDone, logstore.StageFailed, logstore.StageRetryScheduled, logstore.StageRequeued, logstore.StageDeadLettered:
		return true
	}
	return false
}

// WorkerExit counts an isolated worker process that ended while its pool ran: killed (code is
// the error its execution got) or ended on its own (code empty: retired, or crashed).
func (c *Collector) WorkerExit(killed bool, code string) {
	c.workerRestarts.Inc()
	if killed {
		c.workerKills.WithLabelValues(code).Inc()
	}
}

// gauges reads the collector's Sources at scrape time.
type gauges struct{ c *Collector }

var (
	lagDesc = prometheus.NewDesc(namespace+"_listener_lag", "Each listener's backlog on the bus per consumer group: pending (taken by a host, not acknowledged) and undelivered (not taken yet).",
		[]string{"listener", "group", "state"}, nil)
	lagUpDesc      = prometheus.NewDesc(namespace+"_listener_lag_up", "1 when the bus answered the lag query of this scrape, else 0.", nil, nil)
	spoolRowsDesc  = prometheus.NewDesc(namespace+"_log_spool_rows", "Execution-log rows the writer has accepted (spooled) and not yet inserted into the log store.", nil, nil)
	spoolBytesDesc = prometheus.NewDesc(namespace+"_log_spool_bytes", "Bytes of the spooled rows not yet inserted.", nil, nil)
	insertedDesc   = prometheus.NewDesc(namespace+"_log_rows_inserted_total", "Execution-log rows inserted into the log store since the writer started.", nil, nil)
	retriesDesc    = prometheus.NewDesc(namespace+"_log_insert_retries_total", "Failed inserts into the log store the writer retried since it started.", nil, nil)
	blockedDesc    = prometheus.NewDesc(namespace+"_log_blocked_writes", "Writes waiting for room in a full spool.", nil, nil)
)

func (g gauges) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{lagDesc, lagUpDesc, spoolRowsDesc, spoolBytesDesc, insertedDesc, retriesDesc, blockedDesc} {
		ch <- d
	}
}

func (g gauges) Collect(ch chan<- prometheus.Metric) {
	src := g.c.sources()
	if src.Lag != nil {
		ctx, cancel := context.WithTimeout(context.Background(), lagTimeout)
		lag, err := src.Lag(ctx)
		cancel()
		up := 1.0
		if err != nil {
			up = 0
		}
		ch <- prometheus.MustNewConstMetric(lagUpDesc, prometheus.GaugeValue, up)
		for listener, groups := range lag {
			for _, gl := range groups {
				ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(gl.Pending), listener, gl.Group, "pending")
				ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(gl.Undelivered), listener, gl.Group, "undelivered")
			}
		}
	}
	if src.Spool != nil {
		if st, ok := src.Spool(); ok {
			ch <- prometheus.MustNewConstMetric(spoolRowsDesc, prometheus.GaugeValue, float64(st.SpooledRows))
			ch <- prometheus.MustNewConstMetric(spoolBytesDesc, prometheus.GaugeValue, float64(st.SpooledBytes))
			ch <- prometheus.MustNewConstMetric(insertedDesc, prometheus.CounterValue, float64(st.Inserted))
			ch <- prometheus.MustNewConstMetric(retriesDesc, prometheus.CounterValue, float64(st.Retries))
			ch <- prometheus.MustNewConstMetric(blockedDesc, prometheus.GaugeValue, float64(st.BlockedWrites))
		}
	}
}
