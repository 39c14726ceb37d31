package tasks_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/internal/parttest"
	"github.com/trellis-run/trellis/host/lifecycle"
	"github.com/trellis-run/trellis/host/requests"
	"github.com/trellis-run/trellis/host/requests/localtracker"
	"github.com/trellis-run/trellis/host/requests/redistracker"
	"github.com/trellis-run/trellis/host/tasks"
	"github.com/trellis-run/trellis/host/timers"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

// pipeline_finish through the node operations on task nodes and through ticks: each request
// finishes once, after its last node, whatever ended it.

func trackedApp(extra map[string]string) map[string]string {
	app := opsApp()
	app["app.json"] = `{"name": "taskstest", "signals": {"enabled": true}}`
	for k, v := range extra {
		app[k] = v
	}
	return app
}

// trackedSetup is a serving center with signals on and a request tracker: embedded, or every
// backend on the test Redis.
func trackedSetup(t *testing.T, sigs *signalLog, onRedis bool, extra map[string]string) *bundle {
	t.Helper()
	var tr requests.Tracker
	if onRedis {
		opts, err := redis.ParseURL(testRedisURL())
		require.NoError(t, err)
		c := redis.NewClient(opts)
		t.Cleanup(func() { _ = c.Close() })
		tr = redistracker.New(c, "trellis:taskfinish:"+vocab.NewID("")+":")
	} else {
		lt, err := localtracker.Open(filepath.Join(t.TempDir(), "requests.db"))
		require.NoError(t, err)
		t.Cleanup(func() { _ = lt.Close() })
		tr = lt
	}
	return setup(t, trackedApp(extra), func(o *tasks.Options) {
		o.Signals, o.Requests = sigs, tr
		if onRedis {
			o.Store = redisStore(t)
		}
	})
}

func (s *signalLog) ofRequest(requestID string) []lifecycle.Signal {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []lifecycle.Signal
	for _, sig := range s.all {
		if sig.RequestID == requestID {
			out = append(out, sig)
		}
	}
	return out
}

func finishCount(sigs *signalLog, requestID string) int {
	n := 0
	for _, s := range sigs.ofRequest(requestID) {
		if s.Type == lifecycle.PipelineFinish {
			n++
		}
	}
	return n
}

// awaitFinished waits for the request's n-th pipeline_finish, checks no other follows at once,
// that it is the request's last signal and that it names node.
func awaitFinished(t *testing.T, sigs *signalLog, requestID string, n int, node string) {
	t.Helper()
	require.Eventually(t, func() bool { return finishCount(sigs, requestID) >= n }, parttest.WaitLimit, 5*time.Millisecond,
		"pipeline_finish #%d of %s", n, requestID)
	time.Sleep(150 * time.Millisecond)
	all := sigs.ofRequest(requestID)
	require.Equal(t, n, finishCount(sigs, requestID), "pipeline_finish once per end of the request: %v", sigTypes(all))
	last := all[len(all)-1]
	require.Equal(t, lifecycle.PipelineFinish, last.Type, "after every moment of the request: %v", sigTypes(all))
	require.Equal(t, map[string]any{"root_pipeline_id": requestID, "node_id": node}, last.Data)
}

func requireUnfinished(t *testing.T, sigs *signalLog, requestID string, why string) {
	t.Helper()
	time.Sleep(150 * time.Millisecond)
	require.Zero(t, finishCount(sigs, requestID), why)
}

// TestPipelineFinishThroughTaskNodeOps: a request of two timer tasks finishes once, after the
// second ends, whichever operation ends each (pause then resume and run; skip; forcedFail); a
// failed task's request finishes at the failure, and again after a retry ends it; a request's
// revoke or pause and resume (the task side of them) end it as its tasks do. On embedded storage
// and on Redis.
func TestPipelineFinishThroughTaskNodeOps(t *testing.T) {
	t.Parallel()
	for _, onRedis := range []bool{false, true} {
		t.Run(map[bool]string{false: "embedded", true: "redis"}[onRedis], func(t *testing.T) {
			if onRedis && testRedisURL() == "" {
				t.Skip("TRELLIS_TEST_REDIS is not set")
			}
			t.Parallel()
			sigs := &signalLog{}
			b := trackedSetup(t, sigs, onRedis, nil)
			later := time.Now().Add(time.Hour)

			// Pause and resume: the paused task keeps the request running; it runs, and ends it.
			rq := vocab.NewID("req_")
			paused := b.createIn(rq, time.Now().Add(400*time.Millisecond), map[string]any{"n": int64(1)})["taskId"].(string)
			skipped := b.createIn(rq, later, map[string]any{"n": int64(2)})["taskId"].(string)
			b.op("pause", paused, nil)
			b.op("skip", skipped, nil)
			requireUnfinished(t, sigs, rq, "the paused task is a node of the request still")
			b.op("resume", paused, nil)
			b.awaitStage(paused, logstore.StageDone)
			awaitFinished(t, sigs, rq, 1, paused)

			// Skip and forcedFail end a request's waiting tasks: the second end finishes it.
			rq = vocab.NewID("req_")
			a := b.createIn(rq, later, map[string]any{"n": int64(1)})["taskId"].(string)
			c := b.createIn(rq, later, map[string]any{"n": int64(1)})["taskId"].(string)
			b.op("forcedFail", a, "no")
			requireUnfinished(t, sigs, rq, "one task still waits")
			b.op("skip", c, nil)
			awaitFinished(t, sigs, rq, 1, c)

			// A failed task ends its request; its retry makes it unfinished until it ends again.
			rq = vocab.NewID("req_")
			f := b.createIn(rq, time.Now(), map[string]any{"mode": "fail"})["taskId"].(string)
			b.awaitStatus(f, timers.StatusFail)
			awaitFinished(t, sigs, rq, 1, f)
			b.op("retry", f, map[string]any{"n": int64(3)})
			b.awaitStage(f, logstore.StageDone)
			awaitFinished(t, sigs, rq, 2, f)

			// A request's revoke ends its waiting task: the request finishes; a pause and resume of
			// it keeps it running until its task has run.
			rq = vocab.NewID("req_")
			w := b.createIn(rq, later, map[string]any{"n": int64(1)})["taskId"].(string)
			b.requestOp(timers.RequestRevoke, rq)
			awaitFinished(t, sigs, rq, 1, w)
			rq = vocab.NewID("req_")
			p := b.createIn(rq, time.Now().Add(300*time.Millisecond), map[string]any{"n": int64(1)})["taskId"].(string)
			b.requestOp(timers.RequestPause, rq)
			requireUnfinished(t, sigs, rq, "the request's task is paused")
			b.requestOp(timers.RequestResume, rq)
			b.awaitStage(p, logstore.StageDone)
			awaitFinished(t, sigs, rq, 1, p)
		})
	}
}

// TestPipelineFinishOfTicks: each tick of a cron or interval template is a request of its own,
// finished once, after its run. On embedded storage and on Redis (task store and tracker).
func TestPipelineFinishOfTicks(t *testing.T) {
	t.Parallel()
	for _, onRedis := range []bool{false, true} {
		t.Run(map[bool]string{false: "embedded", true: "redis"}[onRedis], func(t *testing.T) {
			if onRedis && testRedisURL() == "" {
				t.Skip("TRELLIS_TEST_REDIS is not set")
			}
			t.Parallel()
			sigs := &signalLog{}
			b := trackedSetup(t, sigs, onRedis, tickApp)
			rows := b.log.Sink.Await(t, "two ticks of Beat and of Every", func(rows []logstore.Row) bool {
				n := doneTicks(rows)
				return n["tasks.Beat"] >= 2 && n["tasks.Every"] >= 2
			})
			checked := 0
			for _, r := range rows {
				if r.Kind != logstore.KindTask || r.Stage != logstore.StageDone {
					continue
				}
				awaitFinished(t, sigs, r.RequestID, 1, r.NodeID)
				types := sigTypes(sigs.ofRequest(r.RequestID))
				require.Equal(t, []string{"node_enter", "node_finish", "pipeline_finish"}, types, "the tick's moments, then its request's end")
				checked++
			}
			require.GreaterOrEqual(t, checked, 4)
		})
	}
}
