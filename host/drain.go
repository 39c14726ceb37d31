package host

import (
	"context"
	"errors"
	"sync"
)

// Drain is the first half of a graceful stop (SIGTERM in `trellis serve`): the host takes no
// more deliveries, due tasks or template ticks, and waits, until ctx ends, for the handlers and
// task functions already running to finish and record their end. Stop follows: it cancels what
// is still running (those deliveries and tasks stay pending for another host) and flushes the
// log writer. Service calls are the HTTP server's to drain; sends and node operations still work
// while the host drains.
func (h *Host) Drain(ctx context.Context) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	drain := func(f func(context.Context) error) {
		defer wg.Done()
		if err := f(ctx); err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	}
	if e := h.events.Load(); e != nil {
		wg.Add(1)
		go drain(e.Drain)
	}
	if c := h.tasks.Load(); c != nil {
		wg.Add(1)
		go drain(c.Drain)
	}
	wg.Wait()
	return errors.Join(errs...)
}
