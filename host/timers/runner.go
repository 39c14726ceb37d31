package timers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// RunnerOptions configure a Runner. Store, Owner and Fire are required.
type RunnerOptions struct {
	Store Store
	// Owner is this host's name (instance id); leases and Finish are checked against it, so two
	// runners must never share one.
	Owner string
	// Fire runs one task; ctx is cancelled when the task is force-ended or the runner stops.
	// It returns the result or an error; an error implementing
	// interface{ TaskError() *TaskError } gives the record's error fields, otherwise code "error"
	// and err.Error(). A panic is recorded as code "panic" with its stack. A *RetryError (also
	// wrapped) sends the task back to waiting until its At (Store.Retry) instead of ending it.
	Fire func(ctx context.Context, t Task) (any, error)
	// Lease is how long a claim lasts without a heartbeat (default 30s); the runner renews it
	// every Lease/3, and another host takes a task over once it lapses.
	Lease time.Duration
	// Poll is the upper bound on the sleep between claims: how late a task created by another
	// host can fire. Default: the store's PollHint (50ms for Redis), else 1s.
	Poll time.Duration
	// MaxConcurrent bounds the Fire calls in flight (default 64); due tasks beyond wait for a slot.
	MaxConcurrent int
	// Now is the clock a claim is checked against and its lease starts from (tests pass a fake
	// one); default time.Now, moved by ClockSkewEnv (a test-only seam) — and, when the store has
	// a clock of its own (StoreClock: Redis), set to that clock's time, so every host of a
	// cluster judges due times by one clock. Lease renewals and the times the store records use
	// the store's own clock.
	Now func() time.Time
	// Logger receives failures the runner recovers from (store errors, finish retries);
	// default: discarded.
	Logger *slog.Logger

	clock *storeSync // the default clock following the store's (set by WithDefaults)
}

// WithDefaults fills in the zero fields.
func (o RunnerOptions) WithDefaults() RunnerOptions {
	if o.Lease == 0 {
		o.Lease = 30 * time.Second
	}
	if o.Poll == 0 {
		o.Poll = time.Second
		if h, ok := o.Store.(PollHinter); ok && h.PollHint() > 0 {
			o.Poll = h.PollHint()
		}
	}
	if o.MaxConcurrent == 0 {
		o.MaxConcurrent = 64
	}
	if o.Now == nil {
		o.Now = defaultNow() // time.Now unless the fault suite's ClockSkewEnv says otherwise
		if sc, ok := o.Store.(StoreClock); ok {
			o.clock = &storeSync{local: o.Now, store: sc}
			o.Now = o.clock.now
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}

func (o RunnerOptions) validate() error {
	switch {
	case o.Store == nil:
		return fmt.Errorf("%w: RunnerOptions.Store is nil", ErrInvalid)
	case o.Owner == "":
		return fmt.Errorf("%w: RunnerOptions.Owner is empty; pass this host's instance id", ErrInvalid)
	case o.Fire == nil:
		return fmt.Errorf("%w: RunnerOptions.Fire is nil", ErrInvalid)
	case o.Lease < 30*time.Millisecond:
		return fmt.Errorf("%w: RunnerOptions.Lease %s must be at least 30ms", ErrInvalid, o.Lease)
	case o.Poll < time.Millisecond:
		return fmt.Errorf("%w: RunnerOptions.Poll %s must be at least 1ms", ErrInvalid, o.Poll)
	case o.MaxConcurrent < 1:
		return fmt.Errorf("%w: RunnerOptions.MaxConcurrent %d must be 1 or more", ErrInvalid, o.MaxConcurrent)
	}
	return ValidateOwner(o.Owner, o.Lease)
}

// Runner fires the due tasks of one host: it sleeps until the next due time (or Poll), claims
// what is due, runs each claimed task in its own goroutine, renews the leases of its runs and
// records their ends. Start and Stop are safe to call twice; a stopped Runner can start again.
type Runner struct {
	o    RunnerOptions
	wake chan struct{}

	mu  sync.Mutex // guards cur
	cur *runState
}

// NewRunner checks the options and returns a stopped Runner.
func NewRunner(o RunnerOptions) (*Runner, error) {
	o = o.WithDefaults()
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("timers: new runner: %w", err)
	}
	return &Runner{o: o, wake: make(chan struct{}, 1)}, nil
}

// runState is one Start..Stop of a Runner.
type runState struct {
	r *Runner

	loopCtx    context.Context // claim loop; cancelled first on Stop
	loopCancel context.CancelFunc
	fireCtx    context.Context // parent of every Fire ctx; cancelled by Stop
	fireCancel context.CancelFunc
	bgCtx      context.Context // heartbeat, force-end watcher, finish retries; cancelled last
	bgCancel   context.CancelFunc

	loopDone chan struct{}
	bg       sync.WaitGroup // heartbeat and force-end watcher
	fires    sync.WaitGroup // Fire goroutines, through their Finish
	freed    chan struct{}  // a slot came free (cap 1)

	mu     sync.Mutex
	held   map[string]*heldTask // tasks this runner runs or is finishing: the heartbeat renews them
	forced map[string]time.Time // force-ended ids not (yet) held: a claim racing the force-end
}

type heldTask struct {
	cancel context.CancelFunc
	forced bool
}

// Start begins claiming and firing. It fails when the store cannot report force-ends.
func (r *Runner) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur != nil {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("timers: start runner: %w", err)
	}
	st := &runState{r: r, loopDone: make(chan struct{}), freed: make(chan struct{}, 1),
		held: map[string]*heldTask{}, forced: map[string]time.Time{}}
	st.bgCtx, st.bgCancel = context.WithCancel(context.Background())
	st.fireCtx, st.fireCancel = context.WithCancel(context.Background())
	st.loopCtx, st.loopCancel = context.WithCancel(context.Background())
	ends, err := r.o.Store.ForcedEnds(st.bgCtx)
	if err != nil {
		st.bgCancel()
		st.fireCancel()
		st.loopCancel()
		return fmt.Errorf("timers: start runner: subscribe to force-ends: %w", err)
	}
	st.bg.Add(2)
	go st.watchForcedEnds(ends)
	go st.heartbeat()
	go st.loop()
	r.cur = st
	return nil
}

// Stop stops claiming, cancels the ctx of every Fire in flight and waits (until ctx ends) for
// them to return. A run that returns an error once cancelled is left running in the store: another
// runner claims it after its lease (at-least-once). A run that completes anyway is recorded.
func (r *Runner) Stop(ctx context.Context) error {
	r.mu.Lock()
	st := r.cur
	r.cur = nil
	r.mu.Unlock()
	if st == nil {
		return nil
	}
	st.loopCancel()
	<-st.loopDone
	st.fireCancel()
	done := make(chan struct{})
	go func() { st.fires.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("timers: stop runner: %w (runs still in flight will be taken over after their lease)", ctx.Err())
	}
	st.bgCancel()
	st.bg.Wait()
	return err
}

// Notify wakes the runner at once, so a task created due now on this host fires without waiting
// for Poll; the runner then re-reads NextDue. Safe to call at any time, also when stopped.
func (r *Runner) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (st *runState) loop() {
	defer close(st.loopDone)
	o := st.r.o
	ctx := st.loopCtx
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	failures := 0
	recheck := false // a due time in the past yielded nothing: claim once more before sleeping
	for ctx.Err() == nil {
		free := o.MaxConcurrent - st.active()
		wait := o.Poll
		if free > 0 {
			if o.clock != nil {
				if err := o.clock.sync(ctx, false); err != nil && ctx.Err() == nil {
					o.Logger.Warn("timers: read the store's clock", "owner", o.Owner, "err", err)
				}
			}
			now := o.Now()
			tasks, err := o.Store.Claim(ctx, now, o.Owner, o.Lease, free)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				failures++
				o.Logger.Warn("timers: claim failed", "owner", o.Owner, "err", err)
				st.sleep(ctx, timer, min(o.Poll, backoff(failures)))
				continue
			}
			failures = 0
			for _, t := range tasks {
				st.launch(t)
			}
			if len(tasks) == free {
				continue // there may be more due
			}
			at, ok, err := o.Store.NextDue(ctx)
			if err != nil && ctx.Err() == nil {
				o.Logger.Warn("timers: next due failed", "owner", o.Owner, "err", err)
			}
			if err == nil && ok {
				d := at.Sub(o.Now())
				if d <= 0 && len(tasks) == 0 && !recheck {
					recheck = true
					continue
				}
				if d <= 0 {
					d = time.Millisecond
				}
				wait = min(wait, d)
			}
			recheck = false
		}
		if !st.sleepUntilWoken(ctx, timer, wait, free <= 0) {
			return
		}
	}
}

func backoff(failures int) time.Duration {
	d := 50 * time.Millisecond << min(failures, 6)
	return min(d, 2*time.Second)
}

func (st *runState) sleep(ctx context.Context, timer *time.Timer, d time.Duration) {
	timer.Reset(d)
	select {
	case <-ctx.Done():
	case <-timer.C:
	}
}

// sleepUntilWoken waits d, or until Notify, or (when full) a slot frees; false when stopping.
func (st *runState) sleepUntilWoken(ctx context.Context, timer *time.Timer, d time.Duration, full bool) bool {
	timer.Reset(d)
	var freed <-chan struct{}
	if full {
		freed = st.freed
	}
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
	case <-st.r.wake:
	case <-freed:
	}
	return true
}

func (st *runState) active() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.held)
}

func (st *runState) launch(t Task) {
	st.mu.Lock()
	if _, ok := st.forced[t.ID]; ok {
		// Force-ended between the claim and now: the store already says forcedEnd.
		delete(st.forced, t.ID)
		st.mu.Unlock()
		return
	}
	if _, ok := st.held[t.ID]; ok {
		// Our own lease lapsed (the store was unreachable for a while) and we took the task over
		// from ourselves: the run in flight goes on and finishes it.
		st.mu.Unlock()
		return
	}
	fctx, cancel := context.WithCancel(st.fireCtx)
	h := &heldTask{cancel: cancel}
	st.held[t.ID] = h
	st.fires.Add(1)
	st.mu.Unlock()
	go st.fire(fctx, t, h)
}

func (st *runState) release(id string) {
	st.mu.Lock()
	if h := st.held[id]; h != nil {
		h.cancel()
		delete(st.held, id)
	}
	st.mu.Unlock()
	select {
	case st.freed <- struct{}{}:
	default:
	}
}

func (st *runState) fire(ctx context.Context, t Task, h *heldTask) {
	defer st.fires.Done()
	defer st.release(t.ID)
	o := st.r.o
	result, err := callFire(ctx, o.Fire, t)
	st.mu.Lock()
	forced := h.forced
	st.mu.Unlock()
	if forced {
		return // the record already says forcedEnd; finishing would be refused
	}
	if err != nil && ctx.Err() != nil && st.fireCtx.Err() != nil {
		return // interrupted by Stop: leave it running for a takeover
	}
	status, terr := StatusSuccess, (*TaskError)(nil)
	var retryAt time.Time
	if err != nil {
		status, result, terr = StatusFail, nil, toTaskError(err)
		var re *RetryError
		if errors.As(err, &re) {
			retryAt = re.At
		}
	}
	for failures := 0; ; {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(st.bgCtx), 10*time.Second)
		var ferr error
		var rec Task
		if retryAt.IsZero() {
			_, ferr = o.Store.Finish(fctx, t.ID, o.Owner, status, result, terr)
		} else {
			rec, ferr = o.Store.Retry(fctx, t.ID, o.Owner, retryAt, terr)
		}
		cancel()
		switch {
		case ferr == nil:
			if !retryAt.IsZero() {
				if re := (*RetryError)(nil); errors.As(err, &re) && re.Retried != nil {
					re.Retried(rec)
				}
				st.r.Notify() // the loop's sleep may be longer than the wait for the retry
			}
			return
		case errors.Is(ferr, ErrConflict), errors.Is(ferr, ErrNotFound):
			o.Logger.Info("timers: task ended elsewhere", "taskId", t.ID, "err", ferr)
			return
		case errors.Is(ferr, ErrInvalid) && !retryAt.IsZero():
			o.Logger.Warn("timers: retry refused, the task ends as fail", "taskId", t.ID, "err", ferr)
			retryAt = time.Time{}
			continue
		case errors.Is(ferr, ErrInvalid) && status == StatusSuccess:
			status, result, terr = StatusFail, nil, &TaskError{Code: "invalid_result", Message: ferr.Error()}
			continue
		}
		failures++
		o.Logger.Warn("timers: finish failed, retrying", "taskId", t.ID, "err", ferr)
		select {
		case <-st.bgCtx.Done():
			return // stopped: the lease lapses and another runner takes the task over
		case <-time.After(backoff(failures)):
		}
	}
}

func callFire(ctx context.Context, fire func(context.Context, Task) (any, error), t Task) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &panicError{msg: fmt.Sprint(p), stack: string(debug.Stack())}
		}
	}()
	return fire(ctx, t)
}

// RetryError is what Fire returns for a failed run the task's retry policy tries again: the
// runner records Err as the task's error and sends the task back to waiting until At
// (Store.Retry), where any runner claims it as the next attempt. At already past runs it at once.
type RetryError struct {
	At  time.Time
	Err error
	// Retried, when set, is called with the record Store.Retry left: waiting, or paused or
	// failed when the task's request is paused or revoked (Store.OperateRequest), which the
	// caller records.
	Retried func(Task)
}

// Error is Err's message: the record's error is the failure's, whenever it is retried.
func (e *RetryError) Error() string {
	if e.Err == nil {
		return "failed"
	}
	return e.Err.Error()
}

func (e *RetryError) Unwrap() error { return e.Err }

type panicError struct{ msg, stack string }

func (e *panicError) Error() string { return "panic: " + e.msg }

func (e *panicError) TaskError() *TaskError {
	return &TaskError{Code: "panic", Message: e.msg, Stack: e.stack}
}

func toTaskError(err error) *TaskError {
	var te interface{ TaskError() *TaskError }
	if errors.As(err, &te) {
		if e := te.TaskError(); e != nil {
			c := *e
			if c.Code == "" {
				c.Code = "error"
			}
			return &c
		}
	}
	return &TaskError{Code: "error", Message: err.Error()}
}

func (st *runState) heartbeat() {
	defer st.bg.Done()
	o := st.r.o
	tick := time.NewTicker(o.Lease / 3)
	defer tick.Stop()
	for {
		select {
		case <-st.bgCtx.Done():
			return
		case <-tick.C:
		}
		st.mu.Lock()
		ids := make([]string, 0, len(st.held))
		for id := range st.held {
			ids = append(ids, id)
		}
		st.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(st.bgCtx, o.Lease/3)
		if err := o.Store.Extend(ctx, o.Owner, ids, o.Lease); err != nil && st.bgCtx.Err() == nil {
			o.Logger.Warn("timers: lease renewal failed", "owner", o.Owner, "tasks", len(ids), "err", err)
		}
		cancel()
	}
}

// forcedMemory bounds the ids remembered for claims racing a force-end.
const forcedMemory = 4096

func (st *runState) watchForcedEnds(ends <-chan string) {
	defer st.bg.Done()
	for {
		var id string
		var ok bool
		select {
		case <-st.bgCtx.Done():
			return
		case id, ok = <-ends:
			if !ok {
				return
			}
		}
		st.mu.Lock()
		if h := st.held[id]; h != nil {
			h.forced = true
			h.cancel()
		} else {
			if len(st.forced) >= forcedMemory {
				cutoff := time.Now().Add(-time.Minute)
				for k, at := range st.forced {
					if at.Before(cutoff) || len(st.forced) >= forcedMemory {
						delete(st.forced, k)
					}
				}
			}
			st.forced[id] = time.Now()
		}
		st.mu.Unlock()
	}
}
