package host

import (
	"context"
	"errors"
)

// servePart starts the work that arrives on its own — deliveries of events (a backlog among
// them), due timers and template ticks — and so comes after every part a handler may use: a
// handler run before the model runtime or the task center exists fails for good, and a backlog
// waiting at start is exactly when that happens. Stopping, it ends that work first (ticks and
// timers, which send events, then deliveries), while the parts it uses are still up.
func (h *Host) servePart() part {
	return part{name: "serving events and tasks",
		start: func(ctx context.Context) error {
			if e := h.events.Load(); e != nil && h.cfg.ServeEvents {
				if err := e.Start(ctx); err != nil {
					return err
				}
			}
			if c := h.tasks.Load(); c != nil {
				if err := c.Start(ctx); err != nil {
					if e := h.events.Load(); e != nil {
						return errors.Join(err, e.Stop(ctx))
					}
					return err
				}
			}
			return nil
		},
		stop: func(ctx context.Context) error {
			var errs []error
			if c := h.tasks.Load(); c != nil {
				errs = append(errs, c.Stop(ctx))
			}
			if e := h.events.Load(); e != nil {
				errs = append(errs, e.Stop(ctx))
			}
			return errors.Join(errs...)
		}}
}
