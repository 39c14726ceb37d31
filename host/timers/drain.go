package timers

import (
	"context"
	"fmt"
)

// Drain is the first half of a graceful stop: the runner claims no more due tasks, while the
// runs it holds go on to their end (recorded in the store) until ctx ends; their leases are
// renewed meanwhile. Stop follows and cancels what has not finished. Calling Stop alone cancels
// every run at once, as before.
func (r *Runner) Drain(ctx context.Context) error {
	r.mu.Lock()
	st := r.cur
	r.mu.Unlock()
	if st == nil {
		return nil
	}
	st.loopCancel()
	<-st.loopDone // no Fire starts after the loop has ended
	done := make(chan struct{})
	go func() { st.fires.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("timers: drain runner: runs still in flight: %w", ctx.Err())
	}
}
