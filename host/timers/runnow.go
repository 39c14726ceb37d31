package timers

import (
	"context"
	"errors"
	"fmt"
)

// RunNow records t as running on this runner (Store.CreateRunning) and runs it as it runs a
// claimed task — Fire, lease heartbeats, interrupted by a force-end, Finish — returning once
// the run has ended and been recorded. Cron and interval ticks use it: the scheduler has chosen
// this host already, and the tick must end before the template's next one under serial
// concurrency.
func (r *Runner) RunNow(ctx context.Context, t Task) (Task, error) {
	r.mu.Lock()
	st := r.cur
	r.mu.Unlock()
	if st == nil {
		return Task{}, errors.New("timers: run now: the runner is not started")
	}
	created, err := r.o.Store.CreateRunning(ctx, t, r.o.Owner, r.o.Lease)
	if err != nil {
		return Task{}, fmt.Errorf("timers: run now: %w", err)
	}
	st.mu.Lock()
	fctx, cancel := context.WithCancel(st.fireCtx)
	h := &heldTask{cancel: cancel}
	st.held[created.ID] = h
	st.fires.Add(1)
	st.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		st.fire(fctx, created, h)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		// The caller stops waiting; the run goes on and records itself.
	}
	return created, nil
}
