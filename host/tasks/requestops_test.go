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

// createIn makes a timer task of tasks.Ops in requestID, as a handler of that request would.
func (b *bundle) createIn(requestID string, start time.Time, args map[string]any) map[string]any {
	b.t.Helper()
	rec, err := b.center.CreateTimerTask(b.ctx, tasks.CreateRequest{FullName: "tasks.Ops", FuncName: "run",
		TaskType: "tasks.NormalType", StartTime: start, ArgDict: args, Caller: tasks.Caller{RequestID: requestID, NodeID: "node_parent"}})
	require.NoError(b.t, err)
	return rec
}

func (b *bundle) requestOp(op, requestID string) []string {
	b.t.Helper()
	nodes, err := b.center.RequestOp(b.ctx, op, requestID)
	require.NoError(b.t, err, "%s of request %s", op, requestID)
	return nodes
}

// TestTaskRequestPauseResume: a request's pause holds its waiting timer tasks and those created
// in it later: due, they do not run, across a restart; the resume runs them at once. A task
// paused on its own stays paused; resume of a task its request holds is refused (409).
func TestTaskRequestPauseResume(t *testing.T) {
	t.Parallel()
	for _, onRedis := range []bool{false, true} {
		t.Run(map[bool]string{false: "embedded", true: "redis"}[onRedis], func(t *testing.T) {
			if onRedis && testRedisURL() == "" {
				t.Skip("TRELLIS_TEST_REDIS is not set")
			}
			t.Parallel()
			b := opsSetup(t, &signalLog{}, onRedis)
			rq, other := vocab.NewID("req_"), vocab.NewID("req_")
			start := time.Now().Add(700 * time.Millisecond)
			a := b.createIn(rq, start, map[string]any{"n": int64(1)})["taskId"].(string)
			own := b.createIn(rq, start, map[string]any{"n": int64(2)})["taskId"].(string)
			b.op("pause", own, nil)
			own2 := b.createIn(rq, start, map[string]any{"n": int64(6)})["taskId"].(string)
			b.op("pause", own2, nil)
			o := b.createIn(other, start, map[string]any{"n": int64(3)})["taskId"].(string)

			require.Equal(t, []string{a}, b.requestOp(timers.RequestPause, rq), "the waiting tasks of the request")
			require.Equal(t, []string{"waiting/scheduled", "waiting/paused"}, stages(b.rows(a)))
			later := b.createIn(rq, time.Now(), map[string]any{"n": int64(4)})
			require.Equal(t, timers.StatusPaused, later["status"], "a task created in a paused request waits paused")
			l := later["taskId"].(string)
			require.Equal(t, []string{"waiting/paused"}, stages(b.rows(l)))
			require.Equal(t, "node_parent", b.rows(l)[0].ParentNodeID)
			_, err := b.center.NodeOp(b.ctx, "resume", a, nil)
			require.ErrorIs(t, err, tasks.ErrConflict)
			require.ErrorContains(t, err, "with its request "+rq)
			// A task paused on its own and resumed while its request is paused stays held by it.
			res := b.op("resume", own2, nil)
			require.Equal(t, "waiting/paused", res.Status+"/"+res.Stage, "resumed on its own, held by its request")
			require.Equal(t, timers.StatusPaused, res.TaskStatus)

			b.awaitStage(o, logstore.StageDone) // the other request's task ran when due
			time.Sleep(time.Until(start) + 300*time.Millisecond)
			if !onRedis {
				b.restart("host2") // (restart reopens the embedded file)
				time.Sleep(300 * time.Millisecond)
			}
			for _, id := range []string{a, l, own2} {
				rec := b.awaitStatus(id, timers.StatusPaused)
				require.Equal(t, int64(0), rec["attempt"], "due but paused: never ran")
			}

			require.ElementsMatch(t, []string{a, l, own2}, b.requestOp(timers.RequestResume, rq))
			for _, id := range []string{a, l, own2} {
				b.awaitStage(id, logstore.StageDone)
			}
			require.Equal(t, []string{"waiting/scheduled", "waiting/paused", "waiting/scheduled", "running/running", "success/done"}, stages(b.rows(a)))
			require.Equal(t, timers.StatusPaused, b.awaitStatus(own, timers.StatusPaused)["status"], "paused on its own, resumed on its own")
			require.Empty(t, b.requestOp(timers.RequestResume, rq), "resuming again changes nothing")
		})
	}
}

// TestTaskRequestRevoke: a revoke ends every waiting or paused task of the request as
// fail/revoked, and those created in it later; a failed run of it is not retried; its tasks take
// no node operation after.
func TestTaskRequestRevoke(t *testing.T) {
	t.Parallel()
	for _, onRedis := range []bool{false, true} {
		t.Run(map[bool]string{false: "embedded", true: "redis"}[onRedis], func(t *testing.T) {
			if onRedis && testRedisURL() == "" {
				t.Skip("TRELLIS_TEST_REDIS is not set")
			}
			t.Parallel()
			b := opsSetup(t, &signalLog{}, onRedis)
			rq := vocab.NewID("req_")
			w := b.createIn(rq, time.Now().Add(time.Hour), map[string]any{"n": int64(1)})["taskId"].(string)
			p := b.createIn(rq, time.Now().Add(time.Hour), map[string]any{"n": int64(1)})["taskId"].(string)
			b.op("pause", p, nil)

			require.ElementsMatch(t, []string{w, p}, b.requestOp(timers.RequestRevoke, rq))
			for _, id := range []string{w, p} {
				rows := b.rows(id)
				last := rows[len(rows)-1]
				require.Equal(t, "fail/revoked", last.Status+"/"+last.Stage)
				require.Equal(t, &logstore.RowError{Code: "revoked", Message: "request " + rq + " was revoked"}, last.Error)
				require.False(t, last.EndTime.IsZero())
				rec := b.awaitStatus(id, timers.StatusFail)
				require.Equal(t, "revoked", rec["error"].(map[string]any)["code"])
			}
			later := b.createIn(rq, time.Now(), map[string]any{"n": int64(2)})
			require.Equal(t, timers.StatusFail, later["status"], "a task created in a revoked request ends at once")
			require.Equal(t, []string{"fail/revoked"}, stages(b.rows(later["taskId"].(string))))

			for _, op := range []string{"retry", "skip"} {
				_, err := b.center.NodeOp(b.ctx, op, w, nil)
				require.ErrorIs(t, err, tasks.ErrConflict, op)
				require.ErrorContains(t, err, "its request "+rq+" is revoked")
			}
			_, err := b.center.RequestOp(b.ctx, timers.RequestPause, rq)
			require.ErrorIs(t, err, timers.ErrConflict)
			require.Equal(t, vocab.CodeConflict, vocab.CodeOf(err))
			_, err = b.center.RequestOp(b.ctx, "explode", rq)
			require.ErrorIs(t, err, tasks.ErrInvalidArgument)
		})
	}
}
