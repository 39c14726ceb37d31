package timerstest

import (
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/timers"
)

// The request operations on task records (Store.OperateRequest).

func inRequest(name, requestID string, at time.Time) timers.Task {
	t := newTask(name, at)
	t.RequestID = requestID
	return t
}

func operateRequest(t *testing.T, s timers.Store, requestID, op string) []timers.Task {
	t.Helper()
	var terr *timers.TaskError
	if op == timers.RequestRevoke {
		terr = &timers.TaskError{Code: "revoked", Message: "request " + requestID + " was revoked"}
	}
	got, err := s.OperateRequest(bg(t), requestID, op, terr)
	require.NoError(t, err, "%s request %s", op, requestID)
	return got
}

func requireRequestState(t *testing.T, s timers.Store, requestID, want string) {
	t.Helper()
	got, err := s.RequestState(bg(t), requestID)
	require.NoError(t, err)
	require.Equal(t, want, got, "the state of request %s", requestID)
}

func sortedIDs(ids ...string) []string {
	out := append([]string{}, ids...)
	sort.Strings(out)
	return out
}

// A request's pause holds every waiting task of it, and those created or retried in it later,
// across a restart; its resume lets them run, but not a task paused on its own.
func testOperateRequestPauseResume(t *testing.T, open Open) {
	s := open(t)
	ctx := bg(t)
	const rq = "req_paused"
	a := create(t, s, inRequest("tasks.A", rq, base))
	keyed := inRequest("tasks.A", rq, base)
	keyed.Key = "row:1"
	k := create(t, s, keyed)
	own := create(t, s, inRequest("tasks.A", rq, base))
	operate(t, s, own.ID, timers.OpPause)
	other := create(t, s, inRequest("tasks.A", "req_other", base))
	run := create(t, s, inRequest("tasks.A", rq, base.Add(-time.Hour)))
	ts, err := s.Claim(ctx, base.Add(-time.Hour), "h1", time.Minute, 10)
	require.NoError(t, err)
	require.Equal(t, []string{run.ID}, ids(ts))

	paused := operateRequest(t, s, rq, timers.RequestPause)
	require.Equal(t, sortedIDs(a.ID, k.ID), ids(paused), "the waiting tasks of the request, no other")
	for _, p := range paused {
		require.Equal(t, timers.StatusPaused, p.Status)
		require.Equal(t, timers.PausedWithRequest, p.PausedWith)
		require.Empty(t, p.Key, "a paused task frees its key")
	}
	require.Empty(t, operateRequest(t, s, rq, timers.RequestPause), "pausing again changes nothing")
	requireRequestState(t, s, rq, timers.RequestPaused)
	requireRequestState(t, s, "req_other", "")
	got, err := s.Get(ctx, own.ID)
	require.NoError(t, err)
	require.Empty(t, got.PausedWith, "a task paused on its own stays so")

	// Resume of a task its request holds is refused; pause of one is too (it is not waiting).
	_, err = s.Operate(ctx, a.ID, timers.Op{Name: timers.OpResume})
	require.ErrorIs(t, err, timers.ErrConflict)
	require.ErrorContains(t, err, "with its request "+rq)
	requireRefused(t, s, a.ID, timers.OpPause, timers.StatusPaused)

	// A task created in the paused request is paused with it; a failed run retried in it waits
	// paused too; a task paused on its own and resumed stays held by the request.
	later := create(t, s, inRequest("tasks.A", rq, base))
	require.Equal(t, timers.StatusPaused, later.Status)
	require.Equal(t, timers.PausedWithRequest, later.PausedWith)
	retried, err := s.Retry(ctx, run.ID, "h1", base, &timers.TaskError{Code: "x", Message: "boom"})
	require.NoError(t, err)
	require.Equal(t, timers.StatusPaused, retried.Status)
	require.Equal(t, timers.PausedWithRequest, retried.PausedWith)
	ts, err = s.Claim(ctx, base.Add(time.Hour), "h1", time.Minute, 10)
	require.NoError(t, err)
	require.Equal(t, []string{other.ID}, ids(ts), "nothing of the paused request runs")
	n, err := s.Pending(ctx)
	require.NoError(t, err)
	require.Zero(t, n)

	// The pause survives a restart; the resume lets the request's tasks run at their times.
	require.NoError(t, s.Close())
	s = open(t)
	resumed := operateRequest(t, s, rq, timers.RequestResume)
	require.Equal(t, sortedIDs(a.ID, k.ID, later.ID, run.ID), ids(resumed))
	for _, r := range resumed {
		require.Equal(t, timers.StatusWaiting, r.Status)
		require.Empty(t, r.PausedWith)
	}
	require.Empty(t, operateRequest(t, s, rq, timers.RequestResume), "resuming again changes nothing")
	requireRequestState(t, s, rq, "")
	ts, err = s.Claim(ctx, base.Add(time.Hour), "h2", time.Minute, 10)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{a.ID, k.ID, later.ID, run.ID}, ids(ts))
	got, err = s.Get(ctx, own.ID)
	require.NoError(t, err)
	require.Equal(t, timers.StatusPaused, got.Status, "paused on its own: resumed on its own")
	require.Equal(t, timers.StatusWaiting, operate(t, s, own.ID, timers.OpResume).Status)
	fresh := create(t, s, inRequest("tasks.A", rq, base))
	require.Equal(t, timers.StatusWaiting, fresh.Status, "after the resume, new tasks wait as usual")
}

// A revoke ends every waiting or paused task of the request, and those created or retried in it
// later, with its error; running ones go on; the request refuses every operation after.
func testOperateRequestRevoke(t *testing.T, open Open) {
	s := open(t)
	ctx := bg(t)
	const rq = "req_revoked"
	w := create(t, s, inRequest("tasks.R", rq, base))
	p := create(t, s, inRequest("tasks.R", rq, base))
	operate(t, s, p.ID, timers.OpPause)
	run := create(t, s, inRequest("tasks.R", rq, base.Add(-time.Hour)))
	ts, err := s.Claim(ctx, base.Add(-time.Hour), "h1", time.Minute, 10)
	require.NoError(t, err)
	require.Equal(t, []string{run.ID}, ids(ts))
	done := create(t, s, inRequest("tasks.R", rq, base.Add(time.Hour)))
	operate(t, s, done.ID, timers.OpSkip)
	holder := inRequest("tasks.R", "req_other", base)
	holder.Key = "row:7"
	h := create(t, s, holder)

	terr := &timers.TaskError{Code: "revoked", Message: "request " + rq + " was revoked"}
	revoked := operateRequest(t, s, rq, timers.RequestRevoke)
	require.Equal(t, sortedIDs(w.ID, p.ID), ids(revoked))
	for _, r := range revoked {
		require.Equal(t, timers.StatusFail, r.Status)
		require.Equal(t, terr, r.Error)
		require.False(t, r.EndedAt.IsZero())
	}
	require.Empty(t, operateRequest(t, s, rq, timers.RequestRevoke), "revoking again changes nothing")
	requireRequestState(t, s, rq, timers.RequestRevoked)

	// Created later: failed at once, holding no key and replacing none.
	later := inRequest("tasks.R", rq, base)
	later.Key = "row:7"
	c, replaced, err := s.Create(ctx, later)
	require.NoError(t, err)
	require.Empty(t, replaced)
	require.Equal(t, timers.StatusFail, c.Status)
	require.Equal(t, terr, c.Error)
	require.Empty(t, c.Key)
	got, err := s.Get(ctx, c.ID)
	require.NoError(t, err)
	requireSame(t, c, got)
	got, err = s.Get(ctx, h.ID)
	require.NoError(t, err)
	require.Equal(t, "row:7", got.Key, "the other request's task keeps its key")

	// The running task's failed run is not retried: it ends with the revoke's error.
	again, err := s.Retry(ctx, run.ID, "h1", base, &timers.TaskError{Code: "x", Message: "boom"})
	require.NoError(t, err)
	require.Equal(t, timers.StatusFail, again.Status)
	require.Equal(t, terr, again.Error)

	// Every operation of a task of the revoked request is refused, as pause and resume of it.
	for _, op := range []string{timers.OpRetry, timers.OpSkip} {
		_, err = s.Operate(ctx, w.ID, timers.Op{Name: op})
		require.ErrorIs(t, err, timers.ErrConflict, op)
		require.ErrorContains(t, err, "its request "+rq+" is revoked")
	}
	for _, op := range []string{timers.RequestPause, timers.RequestResume} {
		_, err = s.OperateRequest(ctx, rq, op, nil)
		require.ErrorIs(t, err, timers.ErrConflict, op)
		require.ErrorContains(t, err, "revoked")
	}
	ts, err = s.Claim(ctx, base.Add(24*time.Hour), "h1", time.Minute, 10)
	require.NoError(t, err)
	require.Equal(t, []string{h.ID}, ids(ts), "nothing of the revoked request runs")

	// Bad arguments.
	for _, tc := range []struct {
		requestID, op string
		terr          *timers.TaskError
	}{{"", timers.RequestPause, nil}, {"req x", timers.RequestPause, nil}, {rq, "explode", nil}, {"req_new", timers.RequestRevoke, nil}} {
		_, err := s.OperateRequest(ctx, tc.requestID, tc.op, tc.terr)
		require.ErrorIs(t, err, timers.ErrInvalid, "%+v", tc)
	}
}
