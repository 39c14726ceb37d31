package host

import (
	"context"

	"github.com/trellis-run/trellis/host/tasks"
)

// tasksPart is the task center on the backends' task store and tick coordinator, there for
// createTimerTask and date-field sync from the moment the parts after it start (model writes keep
// date-field tasks in step through h.Tasks()). It runs due tasks and template ticks only from
// servePart, on a serving host.
func (h *Host) tasksPart() part {
	return part{name: "the task center",
		start: func(ctx context.Context) error {
			b := h.backends.Load()
			exec, _ := h.executor()
			c, err := tasks.New(tasks.Options{
				Store: b.Timers, Executor: exec, Log: h.rec.Load(), Snapshot: h.Snapshot, Location: h.Location,
				Coordinator: b.Coordinator, Serve: h.cfg.ServeEvents, Signals: h.emitter(), Requests: b.Requests, Logger: h.cfg.Logger,
			})
			if err != nil {
				return err
			}
			h.tasks.Store(c)
			return nil
		},
		stop: func(context.Context) error {
			h.tasks.Store(nil)
			return nil
		}}
}

// Tasks is the task center; nil before Start and after Stop.
func (h *Host) Tasks() *tasks.Center { return h.tasks.Load() }
