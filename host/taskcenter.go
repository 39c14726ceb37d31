package host

import (
	"context"

	"github.com/trellis-run/trellis/host/tasks"
)

// tasksPart is the task center on the backends' task store and tick coordinator; it runs due
// tasks and template ticks only on a serving host.
func (h *Host) tasksPart() part {
	var c *tasks.Center
	return part{name: "the task center",
		start: func(ctx context.Context) error {
			b := h.backends.Load()
			exec, _ := h.executor()
			var err error
			c, err = tasks.New(tasks.Options{
				Store: b.Timers, Executor: exec, Log: h.rec.Load(), Snapshot: h.Snapshot, Location: h.Location,
				Coordinator: b.Coordinator, Serve: h.cfg.ServeEvents, Signals: h.emitter(), Requests: b.Requests,
			})
			if err == nil {
				err = c.Start(ctx)
			}
			if err != nil {
				return err
			}
			// Model writes keep date-field tasks in step through h.Tasks(): published before the
			// models part starts.
			h.tasks.Store(c)
			return nil
		},
		stop: func(ctx context.Context) error {
			h.tasks.Store(nil)
			return c.Stop(ctx)
		}}
}

// Tasks is the task center; nil before Start and after Stop.
func (h *Host) Tasks() *tasks.Center { return h.tasks.Load() }
