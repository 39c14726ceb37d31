package timerstest

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/timers"
)

// Open returns a new handle on the store of test t. The first call within a test makes an empty
// store; each later call in the same test opens another handle on the same data, as a second
// host would (Redis: another client; embedded: another handle on the file), also after the
// earlier handles were closed (a restart). The backend closes what is left open at the end of t.
type Open func(t *testing.T) timers.Store

// Run runs the store and runner conformance tests against the backend open opens.
func Run(t *testing.T, open func(t *testing.T) timers.Store) {
	o := Open(open)
	tests := []struct {
		name string
		fn   func(t *testing.T, o Open)
	}{
		{"CreateGet", testCreateGet},
		{"Invalid", testInvalid},
		{"ListPaging", testListPaging},
		{"KeyReplace", testKeyReplace},
		{"KeyReplaceConcurrent", testKeyReplaceConcurrent},
		{"RemoveKey", testRemoveKey},
		{"ClaimExactlyOnce", testClaimExactlyOnce},
		{"NeverEarly", testNeverEarly},
		{"NextDue", testNextDue},
		{"LeaseExpiry", testLeaseExpiry},
		{"Extend", testExtend},
		{"Finish", testFinish},
		{"CreateRunning", testCreateRunning},
		{"ForcedEndWaiting", testForcedEndWaiting},
		{"ForcedEndRunning", testForcedEndRunning},
		{"ForcedEndFinishedAndUnknown", testForcedEndFinished},
		{"Durable", testDurable},
		{"Retry", testRetry},
		{"RetryForcedEnd", testRetryForcedEnd},
		{"Pending", testPending},
		{"OperatePauseResume", testOperatePauseResume},
		{"OperateSkip", testOperateSkip},
		{"OperateForcedFail", testOperateForcedFail},
		{"OperateRetry", testOperateRetry},
		{"OperateRequestPauseResume", testOperateRequestPauseResume},
		{"OperateRequestRevoke", testOperateRequestRevoke},
		{"RunnerFiresAtTime", testRunnerFiresAtTime},
		{"RunnerNeverEarly", testRunnerNeverEarly},
		{"RunnerNotify", testRunnerNotify},
		{"RunnerErrors", testRunnerErrors},
		{"RunnerForcedEnd", testRunnerForcedEnd},
		{"RunnerRetry", testRunnerRetry},
		{"RunnerStopRestart", testRunnerStopRestart},
		{"RunnerTakeover", testRunnerTakeover},
		{"RunnerStopTimeout", testRunnerStopTimeout},
		{"RunnerMaxConcurrent", testRunnerMaxConcurrent},
		{"RunnerOptions", testRunnerOptions},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, o)
		})
	}
}

// base is a fixed time in the future for tests that pass their own "now" to Claim, so stored
// tasks never come due by the wall clock during the test.
var base = time.Date(2100, 1, 2, 3, 4, 5, 0, time.UTC)

func bg(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newTask(name string, at time.Time) timers.Task {
	return timers.Task{FullName: name, FuncName: "run", TaskType: "once", StartTime: at,
		ArgDict: map[string]any{"n": 1}}
}

func create(t *testing.T, s timers.Store, task timers.Task) timers.Task {
	t.Helper()
	c, _, err := s.Create(bg(t), task)
	require.NoError(t, err)
	return c
}

// requireSame compares two records field by field, times by instant.
func requireSame(t *testing.T, want, got timers.Task) {
	t.Helper()
	require.Equal(t, want.ID, got.ID)
	require.Equal(t, want.FullName, got.FullName)
	require.Equal(t, want.FuncName, got.FuncName)
	require.Equal(t, want.TaskType, got.TaskType)
	require.Equal(t, want.ArgDict, got.ArgDict)
	require.Equal(t, want.Status, got.Status)
	require.Equal(t, want.Result, got.Result)
	require.Equal(t, want.Error, got.Error)
	require.Equal(t, want.RequestID, got.RequestID)
	require.Equal(t, want.NodeID, got.NodeID)
	require.Equal(t, want.Key, got.Key)
	require.Equal(t, want.Attempt, got.Attempt)
	require.Equal(t, want.Owner, got.Owner)
	for _, p := range []struct {
		name      string
		want, got time.Time
	}{{"StartTime", want.StartTime, got.StartTime}, {"CreatedAt", want.CreatedAt, got.CreatedAt},
		{"UpdatedAt", want.UpdatedAt, got.UpdatedAt}, {"StartedAt", want.StartedAt, got.StartedAt},
		{"EndedAt", want.EndedAt, got.EndedAt}, {"FirstStartedAt", want.FirstStartedAt, got.FirstStartedAt}} {
		require.True(t, p.want.Equal(p.got), "%s: want %s, got %s", p.name, p.want, p.got)
	}
}

func ids(ts []timers.Task) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

func testCreateGet(t *testing.T, open Open) {
	s := open(t)
	ctx := bg(t)
	before := time.Now().Add(-time.Millisecond)
	at := base.Add(1234567 * time.Nanosecond)
	in := timers.Task{FullName: "tasks.Reminder", FuncName: "remind", TaskType: "once", StartTime: at,
		ArgDict:   map[string]any{"rowId": 12, "name": "x", "big": int64(9007199254740993), "ratio": 0.5, "nested": map[string]any{"list": []any{1, "a", true, nil}}},
		RequestID: "req_1", NodeID: "node_1"}
	c, replaced, err := s.Create(ctx, in)
	require.NoError(t, err)
	require.Empty(t, replaced)
	require.Regexp(t, `^task_[a-z2-7]{20}$`, c.ID)
	require.Equal(t, timers.StatusWaiting, c.Status)
	require.Equal(t, 0, c.Attempt)
	require.True(t, c.StartTime.Equal(at))
	require.False(t, c.CreatedAt.Before(before), "CreatedAt %s is before the call", c.CreatedAt)
	require.False(t, c.CreatedAt.After(time.Now().Add(time.Millisecond)))
	require.True(t, c.StartedAt.IsZero())
	require.True(t, c.EndedAt.IsZero())
	require.True(t, c.FirstStartedAt.IsZero())
	// JSON shapes, like every record read later: whole numbers int64 and exact (an id above
	// 2^53 too), others float64.
	require.Equal(t, map[string]any{"rowId": int64(12), "name": "x", "big": int64(9007199254740993), "ratio": 0.5,
		"nested": map[string]any{"list": []any{int64(1), "a", true, nil}}}, c.ArgDict)

	got, err := s.Get(ctx, c.ID)
	require.NoError(t, err)
	requireSame(t, c, got)

	// A caller-chosen id is kept; a second create with it is a conflict and changes nothing.
	mine := newTask("tasks.Mine", base)
	mine.ID = "task_mine-1"
	c2, _, err := s.Create(ctx, mine)
	require.NoError(t, err)
	require.Equal(t, "task_mine-1", c2.ID)
	dup := newTask("tasks.Other", base.Add(time.Hour))
	dup.ID = "task_mine-1"
	_, _, err = s.Create(ctx, dup)
	require.ErrorIs(t, err, timers.ErrConflict)
	got, err = s.Get(ctx, "task_mine-1")
	require.NoError(t, err)
	require.Equal(t, "tasks.Mine", got.FullName)
	n, err := s.Pending(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(2), n)

	// No argDict is stored as none.
	c3 := create(t, s, timers.Task{FullName: "tasks.Bare", StartTime: base})
	got, err = s.Get(ctx, c3.ID)
	require.NoError(t, err)
	require.Nil(t, got.ArgDict)
}

func testInvalid(t *testing.T, open Open) {
	s := open(t)
	ctx := bg(t)
	for name, task := range map[string]timers.Task{
		"no fullName":   {StartTime: base},
		"no startTime":  {FullName: "tasks.A"},
		"status set":    {FullName: "tasks.A", StartTime: base, Status: timers.StatusRunning},
		"id with space": {ID: "task 1", FullName: "tasks.A", StartTime: base},
		"long key":      {FullName: "tasks.A", StartTime: base, Key: string(make([]byte, timers.MaxKeyLen+1))},
		"bad argDict":   {FullName: "tasks.A", StartTime: base, ArgDict: map[string]any{"f": func() {}}},
		"year 1":        {FullName: "tasks.A", StartTime: time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC)},
	} {
		_, _, err := s.Create(ctx, task)
		require.ErrorIs(t, err, timers.ErrInvalid, name)
	}
	n, err := s.Pending(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "an invalid task was stored")

	_, err = s.CreateRunning(ctx, timers.Task{FullName: "tasks.A", Key: "k"}, "h1", time.Second)
	require.ErrorIs(t, err, timers.ErrInvalid, "a running task holds no key")
	_, err = s.CreateRunning(ctx, timers.Task{FullName: "tasks.A"}, "", time.Second)
	require.ErrorIs(t, err, timers.ErrInvalid, "owner is required")
	_, err = s.CreateRunning(ctx, timers.Task{FullName: "tasks.A"}, "h1", 0)
	require.ErrorIs(t, err, timers.ErrInvalid, "lease is required")

	_, err = s.Get(ctx, "")
	require.ErrorIs(t, err, timers.ErrInvalid)
	_, err = s.Get(ctx, "task_nope")
	require.ErrorIs(t, err, timers.ErrNotFound)

	for _, q := range []timers.ListQuery{{Status: "done"}, {Page: -1}, {PageSize: -1}, {PageSize: timers.MaxPageSize + 1}} {
		_, _, err := s.List(ctx, q)
		require.ErrorIs(t, err, timers.ErrInvalid, "%+v", q)
	}
	_, err = s.Claim(ctx, base, "", time.Second, 1)
	require.ErrorIs(t, err, timers.ErrInvalid)
	_, err = s.Claim(ctx, base, "h1", 0, 1)
	require.ErrorIs(t, err, timers.ErrInvalid)
	require.ErrorIs(t, s.Extend(ctx, "", []string{"x"}, time.Second), timers.ErrInvalid)
	_, err = s.RemoveKey(ctx, "")
	require.ErrorIs(t, err, timers.ErrInvalid)

	c := create(t, s, newTask("tasks.A", base))
	claimed, err := s.Claim(ctx, base, "h1", time.Minute, 1)
	require.NoError(t, err)
	require.Equal(t, []string{c.ID}, ids(claimed))
	_, err = s.Finish(ctx, c.ID, "h1", timers.StatusWaiting, nil, nil)
	require.ErrorIs(t, err, timers.ErrInvalid)
	_, err = s.Finish(ctx, c.ID, "h1", timers.StatusSuccess, func() {}, nil)
	require.ErrorIs(t, err, timers.ErrInvalid, "a result that is not JSON")
	_, err = s.Finish(ctx, c.ID, "h1", timers.StatusSuccess, nil, &timers.TaskError{Code: "x"})
	require.ErrorIs(t, err, timers.ErrInvalid, "success with an error")
	_, err = s.ForcedEnd(ctx, "")
	require.ErrorIs(t, err, timers.ErrInvalid)
	got, err := s.Get(ctx, c.ID)
	require.NoError(t, err)
	require.Equal(t, timers.StatusRunning, got.Status, "a rejected finish changed the task")
}

func testListPaging(t *testing.T, open Open) {
	s := open(t)
	ctx := bg(t)
	var all []timers.Task // creation order
	for i := range 25 {
		name := "tasks.A"
		if i%5 == 0 {
			name = "tasks.B" // 5 of them
		}
		c := create(t, s, newTask(name, base.Add(time.Duration(i)*time.Second)))
		all = append(all, c)
	}
	newest := func(ts []timers.Task) []string {
		out := ids(ts)
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
		return out
	}
	want := newest(all)
	rows, total, err := s.List(ctx, timers.ListQuery{})
	require.NoError(t, err)
	require.Equal(t, int64(25), total)
	require.Equal(t, want[:timers.DefaultPageSize], ids(rows), "first page, newest first")
	requireSame(t, all[24], rows[0])

	rows, total, err = s.List(ctx, timers.ListQuery{Page: 3, PageSize: 10})
	require.NoError(t, err)
	require.Equal(t, int64(25), total)
	require.Equal(t, want[20:], ids(rows))
	rows, total, err = s.List(ctx, timers.ListQuery{Page: 9, PageSize: 10})
	require.NoError(t, err)
	require.Equal(t, int64(25), total)
	require.Empty(t, rows, "a page past the end")

	// Move some tasks on: the first 4 due (i = 0..3, B A A A) are claimed; finish / force-end some.
	claimed, err := s.Claim(ctx, base.Add(3*time.Second), "h1", time.Minute, 10)
	require.NoError(t, err)
	require.Equal(t, ids(all[:4]), ids(claimed), "claimed earliest first")
	_, err = s.Finish(ctx, all[0].ID, "h1", timers.StatusSuccess, "ok", nil) // B success
	require.NoError(t, err)
	_, err = s.Finish(ctx, all[1].ID, "h1", timers.StatusFail, nil, &timers.TaskError{Code: "x", Message: "y"}) // A fail
	require.NoError(t, err)
	_, err = s.ForcedEnd(ctx, all[5].ID) // B waiting -> forcedEnd
	require.NoError(t, err)

	pick := func(f func(i int, t timers.Task) bool) []string {
		var sel []timers.Task
		for i, t := range all {
			if f(i, t) {
				sel = append(sel, t)
			}
		}
		return newest(sel)
	}
	status := func(i int) string {
		switch {
		case i == 0:
			return timers.StatusSuccess
		case i == 1:
			return timers.StatusFail
		case i == 2 || i == 3:
			return timers.StatusRunning
		case i == 5:
			return timers.StatusForcedEnd
		}
		return timers.StatusWaiting
	}
	for _, q := range []timers.ListQuery{
		{FullName: "tasks.B"},
		{FullName: "tasks.A", PageSize: 7, Page: 2},
		{Status: timers.StatusWaiting, PageSize: 5, Page: 3},
		{Status: timers.StatusRunning},
		{FullName: "tasks.B", Status: timers.StatusWaiting},
		{FullName: "tasks.A", Status: timers.StatusSuccess},
		{FullName: "tasks.Nope"},
	} {
		match := pick(func(i int, t timers.Task) bool {
			return (q.FullName == "" || q.FullName == t.FullName) && (q.Status == "" || q.Status == status(i))
		})
		n, _ := q.Normalize()
		lo := min(n.Offset(), len(match))
		hi := min(lo+n.PageSize, len(match))
		rows, total, err := s.List(ctx, q)
		require.NoError(t, err, "%+v", q)
		require.Equal(t, int64(len(match)), total, "%+v", q)
		require.Equal(t, match[lo:hi], ids(rows), "%+v", q)
		for _, r := range rows {
			if q.Status != "" {
				require.Equal(t, q.Status, r.Status)
			}
		}
	}
}

func testKeyReplace(t *testing.T, open Open) {
	s := open(t)
	ctx := bg(t)
	a := newTask("tasks.Due", base)
	a.Key = "tasks.Due:row:1"
	ca, replaced, err := s.Create(ctx, a)
	require.NoError(t, err)
	require.Empty(t, replaced)
	require.Equal(t, a.Key, ca.Key)

	b := newTask("tasks.Due", base.Add(time.Hour)) // the row's date moved
	b.Key = a.Key
	cb, replaced, err := s.Create(ctx, b)
	require.NoError(t, err)
	require.Equal(t, []string{ca.ID}, replaced)
	_, err = s.Get(ctx, ca.ID)
	require.ErrorIs(t, err, timers.ErrNotFound, "the replaced task is deleted")
	n, err := s.Pending(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	_, total, err := s.List(ctx, timers.ListQuery{})
	require.NoError(t, err)
	require.Equal(t, int64(1), total, "the replaced task is not a record any more")

	// Another key is independent.
	other := newTask("tasks.Due", base)
	other.Key = "tasks.Due:row:2"
	co, replaced, err := s.Create(ctx, other)
	require.NoError(t, err)
	require.Empty(t, replaced)

	// Once claimed, a task no longer holds its key: a new task with it replaces nothing.
	claimed, err := s.Claim(ctx, base.Add(time.Hour), "h1", time.Minute, 10)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{cb.ID, co.ID}, ids(claimed))
	c := newTask("tasks.Due", base.Add(2*time.Hour))
	c.Key = a.Key
	_, replaced, err = s.Create(ctx, c)
	require.NoError(t, err)
	require.Empty(t, replaced)
	got, err := s.Get(ctx, cb.ID)
	require.NoError(t, err)
	require.Equal(t, timers.StatusRunning, got.Status)
}

func testKeyReplaceConcurrent(t *testing.T, open Open) {
	s1, s2 := open(t), open(t)
	ctx := bg(t)
	const workers, each = 8, 15
	const key = "tasks.Due:row:42"
	var mu sync.Mutex
	var created, replaced []string
	var wg sync.WaitGroup
	for w := range workers {
		s := s1
		if w%2 == 1 {
			s = s2
		}
		wg.Go(func() {
			for range each {
				task := newTask("tasks.Due", base)
				task.Key = key
				c, r, err := s.Create(ctx, task)
				if !assertNoError(t, err) {
					return
				}
				mu.Lock()
				created = append(created, c.ID)
				replaced = append(replaced, r...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Len(t, created, workers*each)
	rows, total, err := s1.List(ctx, timers.ListQuery{Status: timers.StatusWaiting})
	require.NoError(t, err)
	require.Equal(t, int64(1), total, "exactly one waiting task holds the key")
	survivor := rows[0].ID
	// Every task but the survivor was replaced exactly once.
	want := []string{}
	for _, id := range created {
		if id != survivor {
			want = append(want, id)
		}
	}
	sort.Strings(want)
	sort.Strings(replaced)
	require.Equal(t, want, replaced)
}

func assertNoError(t *testing.T, err error) bool {
	if err != nil {
		t.Errorf("unexpected error: %v", err)
		return false
	}
	return true
}

func testRemoveKey(t *testing.T, open Open) {
	s := open(t)
	ctx := bg(t)
	a := newTask("tasks.Due", base)
	a.Key = "k1"
	ca := create(t, s, a)
	keep := create(t, s, newTask("tasks.Due", base))
	removed, err := s.RemoveKey(ctx, "k1")
	require.NoError(t, err)
	require.Equal(t, []string{ca.ID}, removed)
	removed, err = s.RemoveKey(ctx, "k1")
	require.NoError(t, err)
	require.Empty(t, removed, "idempotent")
	removed, err = s.RemoveKey(ctx, "never-used")
	require.NoError(t, err)
	require.Empty(t, removed)
	_, err = s.Get(ctx, ca.ID)
	require.ErrorIs(t, err, timers.ErrNotFound)
	n, err := s.Pending(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	_, err = s.Get(ctx, keep.ID)
	require.NoError(t, err)
	at, ok, err := s.NextDue(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.False(t, at.Before(base))

	// A running task keeps its key field but RemoveKey does not touch it.
	b := newTask("tasks.Due", base)
	b.Key = "k2"
	cb := create(t, s, b)
	_, err = s.Claim(ctx, base, "h1", time.Minute, 10)
	require.NoError(t, err)
	removed, err = s.RemoveKey(ctx, "k2")
	require.NoError(t, err)
	require.Empty(t, removed)
	got, err := s.Get(ctx, cb.ID)
	require.NoError(t, err)
	require.Equal(t, timers.StatusRunning, got.Status)
	require.Equal(t, "k2", got.Key)
}

func testClaimExactlyOnce(t *testing.T, open Open) {
	s1, s2 := open(t), open(t)
	ctx := bg(t)
	const n = 200
	want := map[string]bool{}
	for i := range n {
		c := create(t, s1, newTask("tasks.Many", base.Add(-time.Duration(i)*time.Millisecond)))
		want[c.ID] = true
	}
	// A task due later must not be claimed by anyone.
	late := create(t, s2, newTask("tasks.Many", base.Add(time.Second)))
	var mu sync.Mutex
	got := map[string][]string{}
	var wg sync.WaitGroup
	for w := range 8 {
		s := s1
		if w%2 == 1 {
			s = s2
		}
		owner := fmt.Sprintf("host-%d", w)
		wg.Go(func() {
			for {
				ts, err := s.Claim(ctx, base, owner, time.Minute, 7)
				if !assertNoError(t, err) || len(ts) == 0 {
					return
				}
				mu.Lock()
				for _, task := range ts {
					got[task.ID] = append(got[task.ID], owner)
					if task.Owner != owner || task.Status != timers.StatusRunning || task.Attempt != 1 {
						t.Errorf("claimed task %+v: want owner %s, running, attempt 1", task, owner)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Len(t, got, n)
	for id, owners := range got {
		require.True(t, want[id], "claimed an unknown task %s", id)
		require.Len(t, owners, 1, "task %s claimed by %v", id, owners)
	}
	l, err := s1.Get(ctx, late.ID)
	require.NoError(t, err)
	require.Equal(t, timers.StatusWaiting, l.Status)
	p, err := s2.Pending(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), p)
}

func testNeverEarly(t *testing.T, open Open) {
	s := open(t)
	ctx := bg(t)
	at := base.Add(time.Second + 500*time.Microsecond)
	c := create(t, s, newTask("tasks.Exact", at))
	for _, now := range []time.Time{base, at.Add(-time.Millisecond), at.Add(-100 * time.Microsecond), at.Add(-time.Nanosecond)} {
		ts, err := s.Claim(ctx, now, "h1", time.Minute, 10)
		require.NoError(t, err)
		require.Empty(t, ts, "claimed at %s, before its start %s", now, at)
	}
	due, ok, err := s.NextDue(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.False(t, due.Before(at), "NextDue %s is before the start %s", due, at)
	require.LessOrEqual(t, due.Sub(at), time.Millisecond)
	ts, err := s.Claim(ctx, at.Add(time.Millisecond), "h1", time.Minute, 10)
	require.NoError(t, err)
	require.Equal(t, []string{c.ID}, ids(ts))
	require.True(t, ts[0].StartTime.Equal(at))
	require.True(t, ts[0].StartedAt.Equal(at.Add(time.Millisecond)) || !ts[0].StartedAt.Before(at), "StartedAt %s", ts[0].StartedAt)
}

func testNextDue(t *testing.T, open Open) {
	s := open(t)
	ctx := bg(t)
	_, ok, err := s.NextDue(ctx)
	require.NoError(t, err)
	require.False(t, ok, "nothing waiting")

	create(t, s, newTask("tasks.X", base.Add(time.Hour)))
	early := create(t, s, newTask("tasks.X", base.Add(time.Minute)))
	create(t, s, newTask("tasks.X", base.Add(2*time.Hour)))
	at, ok, err := s.NextDue(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.True(t, at.Equal(base.Add(time.Minute)), "got %s", at)

	// Force-ending the earliest moves NextDue on.
	_, err = s.ForcedEnd(ctx, early.ID)
	require.NoError(t, err)
	at, _, err = s.NextDue(ctx)
	require.NoError(t, err)
	require.True(t, at.Equal(base.Add(time.Hour)), "got %s", at)

	// A running task's lease expiry counts when sooner than any start.
	create(t, s, newTask("tasks.X", base.Add(-time.Hour)))
	ts, err := s.Claim(ctx, base, "h1", 10*time.Second, 10)
	require.NoError(t, err)
	require.Len(t, ts, 1)
	at, _, err = s.NextDue(ctx)
	require.NoError(t, err)
	require.True(t, at.Equal(base.Add(10*time.Second)), "got %s, want the lease expiry", at)
	_, err = s.Finish(ctx, ts[0].ID, "h1", timers.StatusSuccess, nil, nil)
	require.NoError(t, err)
	at, _, err = s.NextDue(ctx)
	require.NoError(t, err)
	require.True(t, at.Equal(base.Add(time.Hour)), "got %s: a finished task's lease does not count", at)
}

func testLeaseExpiry(t *testing.T, open Open) {
	s1, s2 := open(t), open(t)
	ctx := bg(t)
	c := create(t, s1, newTask("tasks.L", base))
	ts, err := s1.Claim(ctx, base, "a", time.Second, 10)
	require.NoError(t, err)
	require.Equal(t, []string{c.ID}, ids(ts))
	require.Equal(t, 1, ts[0].Attempt)
	require.True(t, ts[0].FirstStartedAt.Equal(ts[0].StartedAt), "the first claim is the first start")
	first := ts[0].FirstStartedAt

	ts, err = s2.Claim(ctx, base.Add(999*time.Millisecond), "b", time.Second, 10)
	require.NoError(t, err)
	require.Empty(t, ts, "the lease still holds")
	ts, err = s2.Claim(ctx, base.Add(1001*time.Millisecond), "b", time.Second, 10)
	require.NoError(t, err)
	require.Equal(t, []string{c.ID}, ids(ts), "taken over after the lease")
	require.Equal(t, 2, ts[0].Attempt)
	require.Equal(t, "b", ts[0].Owner)
	require.Equal(t, timers.StatusRunning, ts[0].Status)
	require.True(t, ts[0].FirstStartedAt.Equal(first), "a takeover keeps the first start")
	require.True(t, ts[0].StartedAt.After(first))

	// The old owner's late finish is refused and changes nothing.
	got, err := s1.Finish(ctx, c.ID, "a", timers.StatusSuccess, "late", nil)
	require.ErrorIs(t, err, timers.ErrConflict)
	require.Equal(t, "b", got.Owner)
	fin, err := s2.Finish(ctx, c.ID, "b", timers.StatusSuccess, "ok", nil)
	require.NoError(t, err)
	require.Equal(t, timers.StatusSuccess, fin.Status)
	require.Equal(t, "ok", fin.Result)
	require.Equal(t, 2, fin.Attempt)

	// A third takeover after the end never happens.
	ts, err = s1.Claim(ctx, base.Add(time.Hour), "c", time.Second, 10)
	require.NoError(t, err)
	require.Empty(t, ts)
}

func testExtend(t *testing.T, open Open) {
	s := open(t)
	ctx := bg(t)
	now := time.Now()
	c := create(t, s, newTask("tasks.E", now.Add(-time.Second)))
	other := create(t, s, newTask("tasks.E", now.Add(-time.Second)))
	ts, err := s.Claim(ctx, now, "a", 200*time.Millisecond, 1)
	require.NoError(t, err)
	require.Len(t, ts, 1)
	ts2, err := s.Claim(ctx, now, "b", 200*time.Millisecond, 1)
	require.NoError(t, err)
	require.Len(t, ts2, 1)
	mine, theirs := ts[0].ID, ts2[0].ID
	require.ElementsMatch(t, []string{c.ID, other.ID}, []string{mine, theirs})

	// a renews its own lease; naming b's task or an unknown id changes nothing.
	require.NoError(t, s.Extend(ctx, "a", []string{mine, theirs, "task_unknown"}, time.Hour))
	ts, err = s.Claim(ctx, now.Add(time.Minute), "c", time.Second, 10)
	require.NoError(t, err)
	require.Equal(t, []string{theirs}, ids(ts), "only the lease not renewed lapsed")
	ts, err = s.Claim(ctx, now.Add(2*time.Hour), "c", time.Second, 10)
	require.NoError(t, err)
	require.Contains(t, ids(ts), mine, "the renewed lease lapses in its turn")
	require.NoError(t, s.Extend(ctx, "a", nil, time.Hour), "nothing to renew")
}

func testFinish(t *testing.T, open Open) {
	s := open(t)
	ctx := bg(t)
	a := create(t, s, newTask("tasks.F", base))
	b := create(t, s, newTask("tasks.F", base))
	ts, err := s.Claim(ctx, base, "h1", time.Minute, 10)
	require.NoError(t, err)
	require.Len(t, ts, 2)

	before := time.Now().Add(-time.Millisecond)
	done, err := s.Finish(ctx, a.ID, "h1", timers.StatusSuccess, map[string]any{"sent": 3, "to": []string{"x"}}, nil)
	require.NoError(t, err)
	require.Equal(t, timers.StatusSuccess, done.Status)
	require.Equal(t, map[string]any{"sent": int64(3), "to": []any{"x"}}, done.Result)
	require.Nil(t, done.Error)
	require.False(t, done.EndedAt.Before(before))
	require.Equal(t, "h1", done.Owner)
	got, err := s.Get(ctx, a.ID)
	require.NoError(t, err)
	requireSame(t, done, got)

	terr := &timers.TaskError{Code: "boom", Message: "it broke", Stack: "index.js:3"}
	failed, err := s.Finish(ctx, b.ID, "h1", timers.StatusFail, nil, terr)
	require.NoError(t, err)
	require.Equal(t, timers.StatusFail, failed.Status)
	require.Equal(t, terr, failed.Error)
	got, err = s.Get(ctx, b.ID)
	require.NoError(t, err)
	requireSame(t, failed, got)

	_, err = s.Finish(ctx, a.ID, "h1", timers.StatusFail, nil, terr)
	require.ErrorIs(t, err, timers.ErrConflict, "finished twice")
	got, err = s.Get(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, timers.StatusSuccess, got.Status)
	_, err = s.Finish(ctx, "task_unknown", "h1", timers.StatusSuccess, nil, nil)
	require.ErrorIs(t, err, timers.ErrNotFound)
	w := create(t, s, newTask("tasks.F", base.Add(time.Hour)))
	_, err = s.Finish(ctx, w.ID, "h1", timers.StatusSuccess, nil, nil)
	require.ErrorIs(t, err, timers.ErrConflict, "a waiting task cannot finish")
}

func testCreateRunning(t *testing.T, open Open) {
	s := open(t)
	ctx := bg(t)
	before := time.Now().Add(-time.Millisecond)
	tick := base.Add(-time.Minute)
	c, err := s.CreateRunning(ctx, timers.Task{FullName: "tasks.Cron", FuncName: "tick", StartTime: tick}, "h1", time.Minute)
	require.NoError(t, err)
	require.Equal(t, timers.StatusRunning, c.Status)
	require.Equal(t, 1, c.Attempt)
	require.Equal(t, "h1", c.Owner)
	require.True(t, c.StartTime.Equal(tick))
	require.False(t, c.StartedAt.Before(before))
	require.True(t, c.FirstStartedAt.Equal(c.StartedAt), "created running: its first start is now")
	got, err := s.Get(ctx, c.ID)
	require.NoError(t, err)
	requireSame(t, c, got)
	n, err := s.Pending(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "a running task is not pending")

	// Zero StartTime means now; the lease is held like a claim's.
	c2, err := s.CreateRunning(ctx, timers.Task{FullName: "tasks.Cron"}, "h1", 100*time.Millisecond)
	require.NoError(t, err)
	require.False(t, c2.StartTime.Before(before))
	ts, err := s.Claim(ctx, time.Now().Add(time.Second), "h2", time.Minute, 10)
	require.NoError(t, err)
	require.Equal(t, []string{c2.ID}, ids(ts), "taken over once its lease lapsed")
	require.Equal(t, 2, ts[0].Attempt)
	fin, err := s.Finish(ctx, c.ID, "h1", timers.StatusSuccess, 1, nil)
	require.NoError(t, err)
	require.Equal(t, int64(1), fin.Result)
}

func testForcedEndWaiting(t *testing.T, open Open) {
	s := open(t)
	ctx := bg(t)
	a := newTask("tasks.W", base)
	a.Key = "row:1"
	ca := create(t, s, a)
	ended, err := s.ForcedEnd(ctx, ca.ID)
	require.NoError(t, err)
	require.Equal(t, timers.StatusForcedEnd, ended.Status)
	require.False(t, ended.EndedAt.IsZero())
	ts, err := s.Claim(ctx, base.Add(time.Hour), "h1", time.Minute, 10)
	require.NoError(t, err)
	require.Empty(t, ts, "a force-ended task never runs")
	n, err := s.Pending(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	got, err := s.Get(ctx, ca.ID)
	require.NoError(t, err)
	require.Equal(t, timers.StatusForcedEnd, got.Status)
	// Its key is free: a new task with it replaces nothing.
	b := newTask("tasks.W", base)
	b.Key = "row:1"
	_, replaced, err := s.Create(ctx, b)
	require.NoError(t, err)
	require.Empty(t, replaced)
	_, err = s.ForcedEnd(ctx, ca.ID)
	require.ErrorIs(t, err, timers.ErrConflict, "already force-ended")
}

func recvID(t *testing.T, ch <-chan string, within time.Duration) string {
	t.Helper()
	select {
	case id, ok := <-ch:
		require.True(t, ok, "ForcedEnds channel closed")
		return id
	case <-time.After(within):
		t.Fatalf("no force-end reported within %s", within)
		return ""
	}
}

func testForcedEndRunning(t *testing.T, open Open) {
	s1, s2 := open(t), open(t)
	ctx := bg(t)
	ch1, err := s1.ForcedEnds(ctx)
	require.NoError(t, err)
	ch2, err := s2.ForcedEnds(ctx)
	require.NoError(t, err)
	c := create(t, s1, newTask("tasks.R", base))
	ts, err := s2.Claim(ctx, base, "h2", time.Minute, 1)
	require.NoError(t, err)
	require.Equal(t, []string{c.ID}, ids(ts))

	ended, err := s1.ForcedEnd(ctx, c.ID)
	require.NoError(t, err)
	require.Equal(t, timers.StatusForcedEnd, ended.Status)
	require.Equal(t, c.ID, recvID(t, ch2, time.Second), "the owner's handle learns")
	require.Equal(t, c.ID, recvID(t, ch1, time.Second), "every handle learns")

	got, err := s2.Finish(ctx, c.ID, "h2", timers.StatusSuccess, "done anyway", nil)
	require.ErrorIs(t, err, timers.ErrConflict)
	require.Equal(t, timers.StatusForcedEnd, got.Status, "Finish returns the force-ended record")
	got, err = s1.Get(ctx, c.ID)
	require.NoError(t, err)
	require.Equal(t, timers.StatusForcedEnd, got.Status)
	require.Nil(t, got.Result)
	ts, err = s1.Claim(ctx, base.Add(time.Hour), "h3", time.Minute, 10)
	require.NoError(t, err)
	require.Empty(t, ts, "a force-ended run is never taken over")

	// Force-ending a waiting task reports nothing; a channel ends with its context.
	w := create(t, s1, newTask("tasks.R", base.Add(time.Hour)))
	_, err = s1.ForcedEnd(ctx, w.ID)
	require.NoError(t, err)
	sub, cancel := context.WithCancel(ctx)
	ch3, err := s1.ForcedEnds(sub)
	require.NoError(t, err)
	cancel()
	require.Eventually(t, func() bool {
		select {
		case _, ok := <-ch3:
			return !ok
		default:
			return false
		}
	}, 5*time.Second, 10*time.Millisecond, "the channel closes when its context ends")
	select {
	case id := <-ch1:
		t.Fatalf("force-ending a waiting task was reported: %s", id)
	case <-time.After(200 * time.Millisecond):
	}
}

func testForcedEndFinished(t *testing.T, open Open) {
	s := open(t)
	ctx := bg(t)
	c := create(t, s, newTask("tasks.F", base))
	_, err := s.Claim(ctx, base, "h1", time.Minute, 1)
	require.NoError(t, err)
	_, err = s.Finish(ctx, c.ID, "h1", timers.StatusFail, nil, &timers.TaskError{Code: "x"})
	require.NoError(t, err)
	got, err := s.ForcedEnd(ctx, c.ID)
	require.ErrorIs(t, err, timers.ErrConflict)
	require.ErrorContains(t, err, timers.StatusFail, "the message says the status")
	require.Equal(t, timers.StatusFail, got.Status)
	_, err = s.ForcedEnd(ctx, "task_unknown")
	require.ErrorIs(t, err, timers.ErrNotFound)
}

func testDurable(t *testing.T, open Open) {
	s := open(t)
	ctx := bg(t)
	waiting := newTask("tasks.D", base)
	waiting.Key = "row:9"
	w := create(t, s, waiting)
	later := create(t, s, newTask("tasks.D", base.Add(time.Hour)))
	r := create(t, s, newTask("tasks.D", base.Add(-time.Hour)))
	ts, err := s.Claim(ctx, base.Add(-time.Hour), "h1", time.Minute, 10)
	require.NoError(t, err)
	require.Equal(t, []string{r.ID}, ids(ts))
	running := ts[0]
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close twice")
	_, err = s.Get(ctx, w.ID)
	require.ErrorIs(t, err, timers.ErrUnavailable, "a closed store")
	_, _, err = s.Create(ctx, newTask("tasks.D", base))
	require.ErrorIs(t, err, timers.ErrUnavailable)
	_, err = s.ForcedEnds(ctx)
	require.ErrorIs(t, err, timers.ErrUnavailable)

	s2 := open(t)
	for _, want := range []timers.Task{w, later, running} {
		got, err := s2.Get(ctx, want.ID)
		require.NoError(t, err)
		requireSame(t, want, got)
	}
	n, err := s2.Pending(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(2), n)
	// The key index survived too.
	again := newTask("tasks.D", base)
	again.Key = "row:9"
	_, replaced, err := s2.Create(ctx, again)
	require.NoError(t, err)
	require.Equal(t, []string{w.ID}, replaced)
	ts, err = s2.Claim(ctx, base.Add(2*time.Hour), "h2", time.Minute, 10)
	require.NoError(t, err)
	require.Len(t, ts, 3, "the due tasks and the lapsed run")
}

func testPending(t *testing.T, open Open) {
	s := open(t)
	ctx := bg(t)
	for i := range 5 {
		create(t, s, newTask("tasks.P", base.Add(time.Duration(i)*time.Second)))
	}
	n, err := s.Pending(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(5), n)
	_, err = s.Claim(ctx, base.Add(time.Second), "h1", time.Minute, 10)
	require.NoError(t, err)
	n, err = s.Pending(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(3), n)
}

func testRetry(t *testing.T, open Open) {
	s1, s2 := open(t), open(t)
	ctx := bg(t)
	task := newTask("tasks.Retry", base)
	task.Key = "row:7"
	c := create(t, s1, task)
	ts, err := s1.Claim(ctx, base, "h1", time.Minute, 10)
	require.NoError(t, err)
	require.Equal(t, []string{c.ID}, ids(ts))
	first := ts[0]
	require.Equal(t, 1, first.Attempt)
	require.False(t, first.FirstStartedAt.IsZero())

	terr := &timers.TaskError{Code: "js_error", Message: "boom", Stack: "index.js:1:7"}
	at := base.Add(time.Minute + 1234567*time.Nanosecond)
	_, err = s2.Retry(ctx, c.ID, "h2", at, terr)
	require.ErrorIs(t, err, timers.ErrConflict, "only the host running the task sends it back")
	waiting, err := s2.Retry(ctx, c.ID, "h1", at, terr)
	require.NoError(t, err)
	require.Equal(t, timers.StatusWaiting, waiting.Status)
	require.True(t, waiting.StartTime.Equal(at), "the next start time, to the nanosecond: %s", waiting.StartTime)
	require.Equal(t, 1, waiting.Attempt, "the failed run's attempt; the next claim makes it 2")
	require.Equal(t, terr, waiting.Error, "the failed run's error")
	require.Empty(t, waiting.Key, "a retry holds no key")
	require.Nil(t, waiting.Result)
	require.True(t, waiting.EndedAt.IsZero())
	require.True(t, waiting.FirstStartedAt.Equal(first.FirstStartedAt))
	require.Equal(t, "h1", waiting.Owner, "the host that ran it last")

	// Every handle sees it, also after every handle was closed (a restart of each host).
	got, err := s1.Get(ctx, c.ID)
	require.NoError(t, err)
	requireSame(t, waiting, got)
	require.NoError(t, s1.Close())
	require.NoError(t, s2.Close())
	s := open(t)
	got, err = s.Get(ctx, c.ID)
	require.NoError(t, err)
	requireSame(t, waiting, got)
	n, err := s.Pending(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	due, ok, err := s.NextDue(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.False(t, due.Before(at), "NextDue %s is before the retry %s", due, at)
	require.Less(t, due.Sub(at), time.Millisecond+time.Nanosecond)
	for q, want := range map[timers.ListQuery]int64{{Status: timers.StatusWaiting}: 1, {Status: timers.StatusRunning}: 0,
		{FullName: "tasks.Retry", Status: timers.StatusWaiting}: 1, {FullName: "tasks.Retry", Status: timers.StatusRunning}: 0} {
		rows, total, err := s.List(ctx, q)
		require.NoError(t, err)
		require.Equal(t, want, total, "%+v", q)
		require.Len(t, rows, int(want), "%+v", q)
	}

	// Its key is free: a new task takes it, and removing the key leaves the retry alone.
	again := newTask("tasks.Retry", base.Add(time.Hour))
	again.Key = "row:7"
	next, replaced, err := s.Create(ctx, again)
	require.NoError(t, err)
	require.Empty(t, replaced)
	removed, err := s.RemoveKey(ctx, "row:7")
	require.NoError(t, err)
	require.Equal(t, []string{next.ID}, removed)

	// Never early; then any host claims it as the next attempt.
	ts, err = s.Claim(ctx, at.Add(-time.Millisecond), "h2", time.Minute, 10)
	require.NoError(t, err)
	require.Empty(t, ts, "claimed before its retry time")
	ts, err = s.Claim(ctx, at.Add(time.Millisecond), "h2", time.Minute, 10)
	require.NoError(t, err)
	require.Equal(t, []string{c.ID}, ids(ts))
	require.Equal(t, 2, ts[0].Attempt)
	require.Equal(t, "h2", ts[0].Owner)
	require.True(t, ts[0].FirstStartedAt.Equal(first.FirstStartedAt), "retries keep the first start")
	require.True(t, ts[0].StartedAt.After(first.StartedAt))

	// A success clears the error of the failed try.
	fin, err := s.Finish(ctx, c.ID, "h2", timers.StatusSuccess, "ok", nil)
	require.NoError(t, err)
	require.Nil(t, fin.Error)
	require.Equal(t, 2, fin.Attempt)
	got, err = s.Get(ctx, c.ID)
	require.NoError(t, err)
	requireSame(t, fin, got)

	// Conflicts, unknown ids and bad arguments change nothing.
	_, err = s.Retry(ctx, c.ID, "h2", at, terr)
	require.ErrorIs(t, err, timers.ErrConflict, "a finished task")
	_, err = s.Retry(ctx, "task_unknown", "h2", at, terr)
	require.ErrorIs(t, err, timers.ErrNotFound)
	w := create(t, s, newTask("tasks.Retry", base.Add(time.Hour)))
	_, err = s.Retry(ctx, w.ID, "h2", at, terr)
	require.ErrorIs(t, err, timers.ErrConflict, "a waiting task")
	for name, call := range map[string]func() error{
		"no id":     func() error { _, err := s.Retry(ctx, "", "h2", at, terr); return err },
		"zero time": func() error { _, err := s.Retry(ctx, c.ID, "h2", time.Time{}, terr); return err },
		"year 3000": func() error {
			_, err := s.Retry(ctx, c.ID, "h2", time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), terr)
			return err
		},
		"no error": func() error { _, err := s.Retry(ctx, c.ID, "h2", at, nil); return err },
	} {
		require.ErrorIs(t, call(), timers.ErrInvalid, name)
	}
	got, err = s.Get(ctx, c.ID)
	require.NoError(t, err)
	requireSame(t, fin, got)
}

// testRetryForcedEnd: a task waiting for its retry is force-ended like any waiting task: it never
// runs again, and nobody is told to interrupt a run.
func testRetryForcedEnd(t *testing.T, open Open) {
	s := open(t)
	ctx := bg(t)
	ch, err := s.ForcedEnds(ctx)
	require.NoError(t, err)
	c := create(t, s, newTask("tasks.RF", base))
	_, err = s.Claim(ctx, base, "h1", time.Minute, 1)
	require.NoError(t, err)
	terr := &timers.TaskError{Code: "failed", Message: "not yet"}
	_, err = s.Retry(ctx, c.ID, "h1", base.Add(time.Second), terr)
	require.NoError(t, err)
	ended, err := s.ForcedEnd(ctx, c.ID)
	require.NoError(t, err)
	require.Equal(t, timers.StatusForcedEnd, ended.Status)
	require.Equal(t, 1, ended.Attempt)
	require.False(t, ended.EndedAt.IsZero())
	ts, err := s.Claim(ctx, base.Add(time.Hour), "h2", time.Minute, 10)
	require.NoError(t, err)
	require.Empty(t, ts, "a force-ended retry never runs")
	n, err := s.Pending(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	_, err = s.Retry(ctx, c.ID, "h1", base.Add(time.Second), terr)
	require.ErrorIs(t, err, timers.ErrConflict)
	select {
	case id := <-ch:
		t.Fatalf("force-ending a waiting retry was reported as a running task: %s", id)
	case <-time.After(200 * time.Millisecond):
	}
}
