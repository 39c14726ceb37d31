package timerstest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/timers"
)

// The node operations on task records (Store.Operate).

func operate(t *testing.T, s timers.Store, id, op string) timers.Task {
	t.Helper()
	got, err := s.Operate(bg(t), id, timers.Op{Name: op, Error: &timers.TaskError{Code: "forcedFail", Message: "stop"}})
	require.NoError(t, err, op)
	return got
}

func requireRefused(t *testing.T, s timers.Store, id, op, status string) {
	t.Helper()
	got, err := s.Operate(bg(t), id, timers.Op{Name: op, Error: &timers.TaskError{Code: "forcedFail"}})
	require.ErrorIs(t, err, timers.ErrConflict, "%s of a %s task", op, status)
	require.ErrorContains(t, err, "it is "+status, "the message names the status")
	require.Equal(t, status, got.Status, "the record comes back")
}

func testOperatePauseResume(t *testing.T, open Open) {
	s := open(t)
	ctx := bg(t)
	task := newTask("tasks.Pause", base)
	task.Key = "row:1"
	c := create(t, s, task)
	paused := operate(t, s, c.ID, timers.OpPause)
	require.Equal(t, timers.StatusPaused, paused.Status)
	require.Empty(t, paused.Key, "a paused task frees its key")
	require.True(t, paused.StartTime.Equal(c.StartTime))
	requireRefused(t, s, c.ID, timers.OpPause, timers.StatusPaused)
	w := create(t, s, newTask("tasks.Pause", base.Add(time.Hour)))
	for _, op := range []string{timers.OpResume, timers.OpRetry} {
		requireRefused(t, s, w.ID, op, timers.StatusWaiting)
	}

	// Not claimed when due, not pending, not next due; listed as paused.
	ts, err := s.Claim(ctx, base.Add(2*time.Hour), "h1", time.Minute, 10)
	require.NoError(t, err)
	require.Len(t, ts, 1, "only the other waiting task")
	require.NotEqual(t, c.ID, ts[0].ID)
	n, err := s.Pending(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	_, ok, err := s.NextDue(ctx)
	require.NoError(t, err)
	if ok {
		// The running task's lease may be next; never the paused task's start time.
		_, err = s.Finish(ctx, ts[0].ID, "h1", timers.StatusSuccess, nil, nil)
		require.NoError(t, err)
		_, ok, err = s.NextDue(ctx)
		require.NoError(t, err)
	}
	require.False(t, ok, "a paused task is not due")
	rows, total, err := s.List(ctx, timers.ListQuery{Status: timers.StatusPaused})
	require.NoError(t, err)
	require.Equal(t, int64(1), total)
	require.Equal(t, []string{c.ID}, ids(rows))

	// Its key is free: a new task with it replaces nothing.
	other := newTask("tasks.Pause", base.Add(time.Hour))
	other.Key = "row:1"
	_, replaced, err := s.Create(ctx, other)
	require.NoError(t, err)
	require.Empty(t, replaced)

	// The pause survives a restart; resume makes it due at its start time again.
	require.NoError(t, s.Close())
	s = open(t)
	got, err := s.Get(ctx, c.ID)
	require.NoError(t, err)
	requireSame(t, paused, got)
	resumed := operate(t, s, c.ID, timers.OpResume)
	require.Equal(t, timers.StatusWaiting, resumed.Status)
	requireRefused(t, s, c.ID, timers.OpResume, timers.StatusWaiting)
	due, ok, err := s.NextDue(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.True(t, due.Equal(base), "due at its start time: %s", due)
	ts, err = s.Claim(ctx, base, "h1", time.Minute, 10)
	require.NoError(t, err)
	require.Equal(t, []string{c.ID}, ids(ts))
	require.Equal(t, 1, ts[0].Attempt)
	_, err = s.Operate(ctx, "task_unknown", timers.Op{Name: timers.OpPause})
	require.ErrorIs(t, err, timers.ErrNotFound)
	_, err = s.Operate(ctx, c.ID, timers.Op{Name: "explode"})
	require.ErrorIs(t, err, timers.ErrInvalid)
	_, err = s.Operate(ctx, c.ID, timers.Op{Name: timers.OpForcedFail})
	require.ErrorIs(t, err, timers.ErrInvalid, "forcedFail needs an error")
}

func testOperateSkip(t *testing.T, open Open) {
	s := open(t)
	ctx := bg(t)
	w := create(t, s, newTask("tasks.Skip", base))
	skipped := operate(t, s, w.ID, timers.OpSkip)
	require.Equal(t, timers.StatusSuccess, skipped.Status)
	require.False(t, skipped.EndedAt.IsZero())
	require.Zero(t, skipped.Attempt, "never ran")
	requireRefused(t, s, w.ID, timers.OpSkip, timers.StatusSuccess)

	p := create(t, s, newTask("tasks.Skip", base))
	operate(t, s, p.ID, timers.OpPause)
	require.Equal(t, timers.StatusSuccess, operate(t, s, p.ID, timers.OpSkip).Status, "a paused task can be skipped")

	f := create(t, s, newTask("tasks.Skip", base))
	ts, err := s.Claim(ctx, base, "h1", time.Minute, 10)
	require.NoError(t, err)
	require.Equal(t, []string{f.ID}, ids(ts))
	requireRefused(t, s, f.ID, timers.OpSkip, timers.StatusRunning)
	_, err = s.Finish(ctx, f.ID, "h1", timers.StatusFail, nil, &timers.TaskError{Code: "x", Message: "boom"})
	require.NoError(t, err)
	got := operate(t, s, f.ID, timers.OpSkip)
	require.Equal(t, timers.StatusSuccess, got.Status)
	require.Equal(t, 1, got.Attempt)
	ts, err = s.Claim(ctx, base.Add(time.Hour), "h1", time.Minute, 10)
	require.NoError(t, err)
	require.Empty(t, ts, "a skipped task never runs")
	rows, total, err := s.List(ctx, timers.ListQuery{Status: timers.StatusSuccess})
	require.NoError(t, err)
	require.Equal(t, int64(3), total)
	require.Len(t, rows, 3)
}

func testOperateForcedFail(t *testing.T, open Open) {
	s1, s2 := open(t), open(t)
	ctx := bg(t)
	ch, err := s2.ForcedEnds(ctx)
	require.NoError(t, err)
	w := create(t, s1, newTask("tasks.FF", base.Add(time.Hour)))
	failed := operate(t, s1, w.ID, timers.OpForcedFail)
	require.Equal(t, timers.StatusFail, failed.Status)
	require.Equal(t, &timers.TaskError{Code: "forcedFail", Message: "stop"}, failed.Error)
	require.False(t, failed.EndedAt.IsZero())
	requireRefused(t, s1, w.ID, timers.OpForcedFail, timers.StatusFail)

	r := create(t, s1, newTask("tasks.FF", base))
	ts, err := s2.Claim(ctx, base, "h2", time.Minute, 10)
	require.NoError(t, err)
	require.Equal(t, []string{r.ID}, ids(ts))
	got := operate(t, s1, r.ID, timers.OpForcedFail)
	require.Equal(t, timers.StatusFail, got.Status)
	require.Equal(t, r.ID, recvID(t, ch, time.Second), "the host running it learns")
	_, err = s2.Finish(ctx, r.ID, "h2", timers.StatusSuccess, "late", nil)
	require.ErrorIs(t, err, timers.ErrConflict, "the interrupted run records nothing")
	ts, err = s1.Claim(ctx, base.Add(24*time.Hour), "h3", time.Minute, 10)
	require.NoError(t, err)
	require.Empty(t, ts, "never run again nor taken over")

	// A paused task can be force-failed, and force-ended.
	p := create(t, s1, newTask("tasks.FF", base))
	operate(t, s1, p.ID, timers.OpPause)
	require.Equal(t, timers.StatusFail, operate(t, s1, p.ID, timers.OpForcedFail).Status)
	q := create(t, s1, newTask("tasks.FF", base))
	operate(t, s1, q.ID, timers.OpPause)
	ended, err := s1.ForcedEnd(ctx, q.ID)
	require.NoError(t, err)
	require.Equal(t, timers.StatusForcedEnd, ended.Status)
	n, err := s1.Pending(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
}

func testOperateRetry(t *testing.T, open Open) {
	s := open(t)
	ctx := bg(t)
	task := newTask("tasks.Again", base)
	task.Key = "row:9"
	c := create(t, s, task)
	ts, err := s.Claim(ctx, base, "h1", time.Minute, 10)
	require.NoError(t, err)
	require.Equal(t, []string{c.ID}, ids(ts))
	requireRefused(t, s, c.ID, timers.OpRetry, timers.StatusRunning)
	terr := &timers.TaskError{Code: "x", Message: "boom"}
	_, err = s.Finish(ctx, c.ID, "h1", timers.StatusFail, nil, terr)
	require.NoError(t, err)

	before := time.Now().Add(-time.Millisecond)
	again, err := s.Operate(ctx, c.ID, timers.Op{Name: timers.OpRetry, ArgDict: map[string]any{"n": int64(2)}})
	require.NoError(t, err)
	require.Equal(t, timers.StatusWaiting, again.Status)
	require.Equal(t, map[string]any{"n": int64(2)}, again.ArgDict)
	require.Equal(t, 1, again.Attempt, "the next claim makes it 2")
	require.Equal(t, terr, again.Error, "the failed try's error until the next end")
	require.Empty(t, again.Key)
	require.True(t, again.EndedAt.IsZero())
	require.False(t, again.StartTime.Before(before), "due now")
	requireRefused(t, s, c.ID, timers.OpRetry, timers.StatusWaiting)

	ts, err = s.Claim(ctx, time.Now().Add(time.Millisecond), "h1", time.Minute, 10)
	require.NoError(t, err)
	require.Equal(t, []string{c.ID}, ids(ts))
	require.Equal(t, 2, ts[0].Attempt)
	require.Equal(t, map[string]any{"n": int64(2)}, ts[0].ArgDict)
	done, err := s.Finish(ctx, c.ID, "h1", timers.StatusSuccess, "ok", nil)
	require.NoError(t, err)
	require.Nil(t, done.Error)

	// Without an argDict the task keeps its own; a force-ended one is final.
	d := create(t, s, newTask("tasks.Again", base))
	operate(t, s, d.ID, timers.OpForcedFail)
	got := operate(t, s, d.ID, timers.OpRetry)
	require.Equal(t, map[string]any{"n": int64(1)}, got.ArgDict)
	e := create(t, s, newTask("tasks.Again", base.Add(time.Hour)))
	_, err = s.ForcedEnd(ctx, e.ID)
	require.NoError(t, err)
	requireRefused(t, s, e.ID, timers.OpRetry, timers.StatusForcedEnd)
}
