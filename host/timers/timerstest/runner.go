package timerstest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/timers"
)

// firing is one Fire call a test saw.
type firing struct {
	task  timers.Task
	owner string
	at    time.Time // the runner's clock when Fire was called
}

// recorder counts Fire calls per task and hands each to the test.
type recorder struct {
	mu    sync.Mutex
	fired map[string][]firing
	ch    chan firing
}

func newRecorder() *recorder {
	return &recorder{fired: map[string][]firing{}, ch: make(chan firing, 1024)}
}

// fire wraps body (nil: return "ok") into a Fire callback for owner that records each call.
func (r *recorder) fire(owner string, now func() time.Time, body func(ctx context.Context, t timers.Task) (any, error)) func(context.Context, timers.Task) (any, error) {
	if now == nil {
		now = time.Now
	}
	return func(ctx context.Context, t timers.Task) (any, error) {
		f := firing{task: t, owner: owner, at: now()}
		r.mu.Lock()
		r.fired[t.ID] = append(r.fired[t.ID], f)
		r.mu.Unlock()
		r.ch <- f
		if body == nil {
			return map[string]any{"ok": true, "by": owner}, nil
		}
		return body(ctx, t)
	}
}

func (r *recorder) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.fired[id])
}

func (r *recorder) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, f := range r.fired {
		n += len(f)
	}
	return n
}

func (r *recorder) next(t *testing.T, within time.Duration) firing {
	t.Helper()
	select {
	case f := <-r.ch:
		return f
	case <-time.After(within):
		t.Fatalf("no task fired within %s", within)
		return firing{}
	}
}

func startRunner(t *testing.T, o timers.RunnerOptions) *timers.Runner {
	t.Helper()
	r, err := timers.NewRunner(o)
	require.NoError(t, err)
	require.NoError(t, r.Start(bg(t)))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = r.Stop(ctx)
	})
	return r
}

func stop(t *testing.T, r *timers.Runner) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, r.Stop(ctx))
}

// waitStatus waits until task id has status and returns the record.
func waitStatus(t *testing.T, s timers.Store, id, status string, within time.Duration) timers.Task {
	t.Helper()
	var last timers.Task
	require.Eventually(t, func() bool {
		got, err := s.Get(context.Background(), id)
		last = got
		return err == nil && got.Status == status
	}, within, 10*time.Millisecond, "task %s: want status %s, last seen %+v", id, status, last)
	return last
}

// fakeClock is a settable clock for runners.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func testRunnerFiresAtTime(t *testing.T, open Open) {
	s := open(t)
	rec := newRecorder()
	r := startRunner(t, timers.RunnerOptions{Store: s, Owner: "r1", Fire: rec.fire("r1", nil, nil), Lease: 2 * time.Second})
	at := time.Now().Add(300 * time.Millisecond)
	c := create(t, s, newTask("tasks.At", at))
	r.Notify()
	f := rec.next(t, 3*time.Second)
	require.Equal(t, c.ID, f.task.ID)
	require.False(t, f.at.Before(at), "fired at %s, before its start %s", f.at, at)
	require.Less(t, f.at.Sub(at), time.Second, "fired %s late", f.at.Sub(at))
	require.Equal(t, timers.StatusRunning, f.task.Status)
	require.Equal(t, 1, f.task.Attempt)
	done := waitStatus(t, s, c.ID, timers.StatusSuccess, 3*time.Second)
	require.Equal(t, map[string]any{"ok": true, "by": "r1"}, done.Result)
	require.Equal(t, "r1", done.Owner)

	// A start time already past fires at once.
	past := create(t, s, newTask("tasks.At", time.Now().Add(-time.Hour)))
	r.Notify()
	f = rec.next(t, 3*time.Second)
	require.Equal(t, past.ID, f.task.ID)
	waitStatus(t, s, past.ID, timers.StatusSuccess, 3*time.Second)
	require.Equal(t, 1, rec.count(c.ID))
}

func testRunnerNeverEarly(t *testing.T, open Open) {
	s := open(t)
	clock := &fakeClock{now: base}
	rec := newRecorder()
	startRunner(t, timers.RunnerOptions{Store: s, Owner: "r1", Fire: rec.fire("r1", clock.Now, nil),
		Poll: 10 * time.Millisecond, Lease: time.Minute, Now: clock.Now})
	at := base.Add(time.Second)
	c := create(t, s, newTask("tasks.Early", at))
	for _, now := range []time.Time{base, at.Add(-time.Millisecond), at.Add(-time.Nanosecond)} {
		clock.Set(now)
		// Twenty polls at this clock: the task must stay waiting.
		deadline := time.Now().Add(200 * time.Millisecond)
		for time.Now().Before(deadline) {
			select {
			case f := <-rec.ch:
				t.Fatalf("fired at %s, before its start %s", f.at, at)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	clock.Set(at)
	f := rec.next(t, 3*time.Second)
	require.Equal(t, c.ID, f.task.ID)
	require.False(t, f.at.Before(at))
	waitStatus(t, s, c.ID, timers.StatusSuccess, 3*time.Second)
}

func testRunnerNotify(t *testing.T, open Open) {
	s := open(t)
	rec := newRecorder()
	// A sentinel task due now shows the runner has looked once; afterwards it sleeps until the
	// sentinel's lease (a minute) or the poll (an hour): only Notify can make it look sooner.
	sentinel := create(t, s, newTask("tasks.Now", time.Now().Add(-time.Second)))
	release := make(chan struct{})
	r := startRunner(t, timers.RunnerOptions{Store: s, Owner: "r1", Fire: rec.fire("r1", nil, func(ctx context.Context, task timers.Task) (any, error) {
		if task.ID == sentinel.ID {
			<-release // keep the sentinel running, so its lease is the next due time
		}
		return nil, nil
	}), Poll: time.Hour, Lease: time.Minute})
	t.Cleanup(func() { close(release) }) // runs before startRunner's Stop
	require.Equal(t, sentinel.ID, rec.next(t, 3*time.Second).task.ID)
	c := create(t, s, newTask("tasks.Now", time.Now()))
	r.Notify()
	f := rec.next(t, time.Second)
	require.Equal(t, c.ID, f.task.ID)
	waitStatus(t, s, c.ID, timers.StatusSuccess, 3*time.Second)
}

// codedError carries the record's error fields, as the host's JS errors do.
type codedError struct{ te timers.TaskError }

func (e *codedError) Error() string                { return e.te.Message }
func (e *codedError) TaskError() *timers.TaskError { return &e.te }

func testRunnerErrors(t *testing.T, open Open) {
	s := open(t)
	rec := newRecorder()
	body := func(ctx context.Context, task timers.Task) (any, error) {
		switch task.FuncName {
		case "coded":
			return nil, fmt.Errorf("wrapped: %w", &codedError{timers.TaskError{Code: "validation", Message: "bad row", Stack: "index.js:7"}})
		case "plain":
			return nil, errors.New("plain failure")
		case "panic":
			panic("kaboom")
		case "unstorable":
			return func() {}, nil
		}
		return task.ArgDict, nil
	}
	startRunner(t, timers.RunnerOptions{Store: s, Owner: "r1", Fire: rec.fire("r1", nil, body), Poll: 20 * time.Millisecond, Lease: time.Minute})
	mk := func(fn string) timers.Task {
		task := newTask("tasks.Err", time.Now().Add(-time.Second))
		task.FuncName = fn
		return create(t, s, task)
	}
	ok, coded, plain, pan, bad := mk("echo"), mk("coded"), mk("plain"), mk("panic"), mk("unstorable")

	got := waitStatus(t, s, ok.ID, timers.StatusSuccess, 3*time.Second)
	require.Equal(t, map[string]any{"n": int64(1)}, got.Result)
	got = waitStatus(t, s, coded.ID, timers.StatusFail, 3*time.Second)
	require.Equal(t, &timers.TaskError{Code: "validation", Message: "bad row", Stack: "index.js:7"}, got.Error)
	got = waitStatus(t, s, plain.ID, timers.StatusFail, 3*time.Second)
	require.Equal(t, &timers.TaskError{Code: "error", Message: "plain failure"}, got.Error)
	got = waitStatus(t, s, pan.ID, timers.StatusFail, 3*time.Second)
	require.Equal(t, "panic", got.Error.Code)
	require.Equal(t, "kaboom", got.Error.Message)
	require.Contains(t, got.Error.Stack, "goroutine")
	got = waitStatus(t, s, bad.ID, timers.StatusFail, 3*time.Second)
	require.Equal(t, "invalid_result", got.Error.Code, "a result that cannot be stored fails the task")
	for _, id := range []string{ok.ID, coded.ID, plain.ID, pan.ID, bad.ID} {
		require.Equal(t, 1, rec.count(id), "task %s fired once", id)
	}
}

func testRunnerForcedEnd(t *testing.T, open Open) {
	s1, s2 := open(t), open(t)
	rec := newRecorder()
	var mu sync.Mutex
	cancelled := map[string]time.Time{}
	block := func(ctx context.Context, task timers.Task) (any, error) {
		<-ctx.Done()
		mu.Lock()
		cancelled[task.ID] = time.Now()
		mu.Unlock()
		return nil, ctx.Err()
	}
	handles := map[string]timers.Store{"A": s1, "B": s2}
	for owner, s := range handles {
		startRunner(t, timers.RunnerOptions{Store: s, Owner: owner, Fire: rec.fire(owner, nil, block),
			Poll: 20 * time.Millisecond, Lease: 3 * time.Second})
	}
	const n = 4
	for range n {
		create(t, s1, newTask("tasks.Block", time.Now().Add(-time.Second)))
	}
	for range n {
		f := rec.next(t, 3*time.Second)
		// Force-end through the other handle than the one whose runner runs it.
		via := s1
		if f.owner == "A" {
			via = s2
		}
		ended := time.Now()
		got, err := via.ForcedEnd(bg(t), f.task.ID)
		require.NoError(t, err)
		require.Equal(t, timers.StatusForcedEnd, got.Status)
		require.Eventually(t, func() bool {
			mu.Lock()
			defer mu.Unlock()
			_, ok := cancelled[f.task.ID]
			return ok
		}, 2*time.Second, 5*time.Millisecond, "runner %s was not interrupted", f.owner)
		mu.Lock()
		lag := cancelled[f.task.ID].Sub(ended)
		mu.Unlock()
		require.Less(t, lag, time.Second, "interrupted %s after forcedEnd on runner %s", lag, f.owner)
	}
	for id := range rec.fired {
		got, err := s1.Get(bg(t), id)
		require.NoError(t, err)
		require.Equal(t, timers.StatusForcedEnd, got.Status)
		require.Equal(t, 1, rec.count(id))
	}
}

// testRunnerRetry: a Fire that returns a RetryError sends its task back to waiting; whichever
// runner finds it due runs it again as the next attempt, never before the retry time; a retry
// that is force-ended while it waits never runs; a retry time the store refuses ends the task.
func testRunnerRetry(t *testing.T, open Open) {
	s1, s2 := open(t), open(t)
	rec := newRecorder()
	var mu sync.Mutex
	retryAt := map[string][]time.Time{}   // by task id, the retry time each failed try asked for
	retried := map[string][]timers.Task{} // by task id, the records RetryError.Retried was given
	later := func(task timers.Task, d time.Duration, msg string) error {
		at := time.Now().Add(d)
		mu.Lock()
		retryAt[task.ID] = append(retryAt[task.ID], at)
		mu.Unlock()
		return &timers.RetryError{At: at, Err: &codedError{timers.TaskError{Code: "js_error", Message: msg}},
			Retried: func(r timers.Task) {
				mu.Lock()
				retried[r.ID] = append(retried[r.ID], r)
				mu.Unlock()
			}}
	}
	body := func(ctx context.Context, task timers.Task) (any, error) {
		switch task.FuncName {
		case "flaky": // fails its first two tries
			if task.Attempt < 3 {
				return nil, later(task, 300*time.Millisecond, fmt.Sprintf("try %d", task.Attempt))
			}
			return task.Attempt, nil
		case "hopeless":
			return nil, later(task, 300*time.Millisecond, "never")
		case "absurd": // a retry time the store refuses
			return nil, &timers.RetryError{At: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), Err: errors.New("too late")}
		}
		return nil, errors.New("unknown function")
	}
	for owner, s := range map[string]timers.Store{"A": s1, "B": s2} {
		startRunner(t, timers.RunnerOptions{Store: s, Owner: owner, Fire: rec.fire(owner, nil, body),
			Poll: 20 * time.Millisecond, Lease: time.Minute})
	}
	mk := func(fn string) timers.Task {
		task := newTask("tasks.Retry", time.Now().Add(-time.Second))
		task.FuncName = fn
		return create(t, s1, task)
	}
	flaky, hopeless, absurd := mk("flaky"), mk("hopeless"), mk("absurd")

	// Between tries the record waits, with the failed try's attempt and error.
	var w timers.Task
	require.Eventually(t, func() bool {
		got, err := s2.Get(bg(t), flaky.ID)
		w = got
		return err == nil && got.Status == timers.StatusWaiting && got.Attempt == 1
	}, 3*time.Second, 5*time.Millisecond, "the first failed try sends the task back to waiting (last seen %+v)", w)
	require.Equal(t, &timers.TaskError{Code: "js_error", Message: "try 1"}, w.Error)

	got := waitStatus(t, s1, flaky.ID, timers.StatusSuccess, 5*time.Second)
	require.Equal(t, int64(3), got.Result)
	require.Equal(t, 3, got.Attempt)
	require.Nil(t, got.Error)
	require.Equal(t, 3, rec.count(flaky.ID), "three tries, each once")
	mu.Lock()
	asked := retryAt[flaky.ID]
	told := retried[flaky.ID]
	mu.Unlock()
	require.Len(t, told, 2, "Retried hears each retry once")
	for i, r := range told {
		require.Equal(t, timers.StatusWaiting, r.Status)
		require.Equal(t, i+1, r.Attempt, "the record after the failed try %d", i+1)
	}
	rec.mu.Lock()
	fired := rec.fired[flaky.ID]
	rec.mu.Unlock()
	for i, f := range fired {
		require.Equal(t, i+1, f.task.Attempt)
		if i > 0 {
			require.False(t, f.at.Before(asked[i-1]), "try %d ran at %s, before its retry time %s", i+1, f.at, asked[i-1])
		}
	}

	got = waitStatus(t, s1, absurd.ID, timers.StatusFail, 3*time.Second)
	require.Equal(t, "too late", got.Error.Message, "a refused retry time ends the task with its error")
	require.Equal(t, 1, rec.count(absurd.ID))

	require.Eventually(t, func() bool {
		got, err := s1.Get(bg(t), hopeless.ID)
		return err == nil && got.Status == timers.StatusWaiting && got.Attempt >= 1
	}, 3*time.Second, 5*time.Millisecond)
	ended, err := s2.ForcedEnd(bg(t), hopeless.ID)
	require.NoError(t, err)
	require.Equal(t, timers.StatusForcedEnd, ended.Status)
	tries := rec.count(hopeless.ID)
	time.Sleep(600 * time.Millisecond) // two retry intervals
	require.Equal(t, tries, rec.count(hopeless.ID), "a force-ended retry never runs")
	got, err = s1.Get(bg(t), hopeless.ID)
	require.NoError(t, err)
	require.Equal(t, timers.StatusForcedEnd, got.Status)
}

// waitUntil waits for the wall clock to pass at: the test needs tasks to come due meanwhile.
func waitUntil(at time.Time) {
	if d := time.Until(at); d > 0 {
		time.Sleep(d)
	}
}

func testRunnerStopRestart(t *testing.T, open Open) {
	s1, s2 := open(t), open(t)
	rec := newRecorder()
	quick := func(ctx context.Context, task timers.Task) (any, error) { return task.ID, nil }
	opts := func(s timers.Store, owner string) timers.RunnerOptions {
		return timers.RunnerOptions{Store: s, Owner: owner, Fire: rec.fire(owner, nil, quick),
			Poll: 20 * time.Millisecond, Lease: time.Second}
	}
	r1 := startRunner(t, opts(s1, "A"))
	r2 := startRunner(t, opts(s2, "B"))
	// The tasks come due over 3 s and the runners stop at 0.4 s: some fire before the stop, the
	// rest after the restart (over 1.2 s, a stall of the machine longer than 0.8 s — CI under
	// -race — let every one fire before the stop).
	const n = 30
	start := time.Now()
	var all []string
	for i := range n {
		s := s1
		if i%2 == 1 {
			s = s2
		}
		all = append(all, create(t, s, newTask("tasks.Stream", start.Add(time.Duration(i)*100*time.Millisecond))).ID)
	}
	waitUntil(start.Add(400 * time.Millisecond))
	stop(t, r1)
	stop(t, r2)
	before := rec.total()
	// Tasks come due while every runner is stopped.
	waitUntil(start.Add(800 * time.Millisecond))
	require.Equal(t, before, rec.total(), "a stopped runner fired")
	require.Positive(t, before, "nothing fired before the stop")
	require.Less(t, before, n, "everything fired before the stop")
	// r1 restarts; B comes back as a new runner (a restarted host).
	require.NoError(t, r1.Start(bg(t)))
	startRunner(t, opts(s2, "B"))
	require.Eventually(t, func() bool { return rec.total() >= n }, 5*time.Second, 10*time.Millisecond)
	for _, id := range all {
		got := waitStatus(t, s1, id, timers.StatusSuccess, 3*time.Second)
		require.Equal(t, id, got.Result)
		require.Equal(t, 1, rec.count(id), "task %s fired %d times", id, rec.count(id))
		require.False(t, rec.fired[id][0].at.Before(got.StartTime), "task %s fired early", id)
	}
}

func testRunnerTakeover(t *testing.T, open Open) {
	s1, s2 := open(t), open(t)
	rec := newRecorder()
	started := make(chan struct{})
	var once sync.Once
	hang := func(ctx context.Context, task timers.Task) (any, error) {
		once.Do(func() { close(started) })
		<-ctx.Done()
		return nil, ctx.Err()
	}
	ra, err := timers.NewRunner(timers.RunnerOptions{Store: s1, Owner: "A", Fire: rec.fire("A", nil, hang),
		Poll: 20 * time.Millisecond, Lease: 300 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, ra.Start(bg(t)))
	c := create(t, s1, newTask("tasks.Long", time.Now().Add(-time.Second)))
	select {
	case <-started:
	case <-time.After(3 * time.Second):
		t.Fatal("runner A did not fire")
	}
	// A stops mid-run: the run is cancelled and, having returned an error, left running for a
	// takeover.
	stop(t, ra)
	got, err := s2.Get(bg(t), c.ID)
	require.NoError(t, err)
	require.Equal(t, timers.StatusRunning, got.Status)
	require.Equal(t, "A", got.Owner)

	startRunner(t, timers.RunnerOptions{Store: s2, Owner: "B", Fire: rec.fire("B", nil, nil),
		Poll: 20 * time.Millisecond, Lease: 300 * time.Millisecond})
	got = waitStatus(t, s2, c.ID, timers.StatusSuccess, 5*time.Second)
	require.Equal(t, "B", got.Owner)
	require.Equal(t, 2, got.Attempt)
	require.Equal(t, 2, rec.count(c.ID), "at least once: A's interrupted run and B's")
}

func testRunnerStopTimeout(t *testing.T, open Open) {
	s := open(t)
	rec := newRecorder()
	release := make(chan struct{})
	stubborn := func(ctx context.Context, task timers.Task) (any, error) {
		<-release // ignores ctx
		return "finished late", nil
	}
	r, err := timers.NewRunner(timers.RunnerOptions{Store: s, Owner: "A", Fire: rec.fire("A", nil, stubborn),
		Poll: 20 * time.Millisecond, Lease: time.Minute})
	require.NoError(t, err)
	require.NoError(t, r.Start(bg(t)))
	c := create(t, s, newTask("tasks.Stubborn", time.Now().Add(-time.Second)))
	rec.next(t, 3*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	err = r.Stop(ctx)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "Stop gives up when its ctx ends")
	close(release)
	got := waitStatus(t, s, c.ID, timers.StatusSuccess, 3*time.Second)
	require.Equal(t, "finished late", got.Result, "a run that completes after Stop is still recorded")
}

func testRunnerMaxConcurrent(t *testing.T, open Open) {
	s := open(t)
	rec := newRecorder()
	var running, peak atomic.Int64
	release := make(chan struct{})
	body := func(ctx context.Context, task timers.Task) (any, error) {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		running.Add(-1)
		return nil, nil
	}
	startRunner(t, timers.RunnerOptions{Store: s, Owner: "r1", Fire: rec.fire("r1", nil, body),
		Poll: 20 * time.Millisecond, Lease: time.Minute, MaxConcurrent: 2})
	var all []string
	for range 6 {
		all = append(all, create(t, s, newTask("tasks.Par", time.Now().Add(-time.Second))).ID)
	}
	require.Eventually(t, func() bool { return running.Load() == 2 }, 3*time.Second, 5*time.Millisecond)
	n, err := s.Pending(bg(t))
	require.NoError(t, err)
	require.Equal(t, int64(4), n, "tasks beyond MaxConcurrent stay waiting")
	close(release)
	for _, id := range all {
		waitStatus(t, s, id, timers.StatusSuccess, 3*time.Second)
	}
	require.Equal(t, int64(2), peak.Load())
}

func testRunnerOptions(t *testing.T, open Open) {
	s := open(t)
	fire := func(context.Context, timers.Task) (any, error) { return nil, nil }
	for name, o := range map[string]timers.RunnerOptions{
		"no store":   {Owner: "a", Fire: fire},
		"no owner":   {Store: s, Fire: fire},
		"no fire":    {Store: s, Owner: "a"},
		"lease":      {Store: s, Owner: "a", Fire: fire, Lease: time.Millisecond},
		"poll":       {Store: s, Owner: "a", Fire: fire, Poll: -time.Second},
		"concurrent": {Store: s, Owner: "a", Fire: fire, MaxConcurrent: -1},
	} {
		_, err := timers.NewRunner(o)
		require.ErrorIs(t, err, timers.ErrInvalid, name)
	}
	r, err := timers.NewRunner(timers.RunnerOptions{Store: s, Owner: "a", Fire: fire})
	require.NoError(t, err)
	require.NoError(t, r.Stop(bg(t)), "stop before start")
	require.NoError(t, r.Start(bg(t)))
	require.NoError(t, r.Start(bg(t)), "start twice")
	r.Notify()
	require.NoError(t, r.Stop(bg(t)))
	require.NoError(t, r.Stop(bg(t)), "stop twice")
	done, cancel := context.WithCancel(context.Background())
	cancel()
	require.Error(t, r.Start(done), "start with an ended context")

	// A runner on a closed store cannot start: it could not learn of force-ends.
	closed := open(t)
	require.NoError(t, closed.Close())
	r2, err := timers.NewRunner(timers.RunnerOptions{Store: closed, Owner: "a", Fire: fire})
	require.NoError(t, err)
	require.ErrorIs(t, r2.Start(bg(t)), timers.ErrUnavailable)
}
