package host

import (
	"context"

	"github.com/trellis-run/trellis/host/bus"

	"github.com/trellis-run/trellis/host/lifecycle"
	"github.com/trellis-run/trellis/host/signals"
)

// signalsPart is the receiving side of signals (docs/signals.md): the Emitter the event and
// task centers announce to, its JS receivers, the bus topic every host reads, and the hub the
// SSE stream follows. It starts before the event center, which is handed its Emitter.
func (h *Host) signalsPart() part {
	var c *signals.Center
	return part{name: "signals",
		start: func(ctx context.Context) error {
			b := h.backends.Load()
			exec, _ := h.executor()
			// Signals cross hosts on a shared bus (Redis). The embedded bus has one host, so the
			// hub is fed directly: a durable, fsynced append per signal (five per event) bought
			// nothing there, and cost a hooked event's path a quarter of its CPU (BENCHMARKS.md).
			var sbus bus.Bus
			if b.Names["bus"] == "redis" {
				sbus = b.Bus
			}
			var err error
			c, err = signals.New(signals.Options{
				Snapshot: h.Snapshot, Executor: exec, Bus: sbus, Log: h.rec.Load(), InstanceID: h.instance,
			})
			if err == nil {
				err = c.Start(ctx)
			}
			if err != nil {
				return err
			}
			h.signals.Store(c)
			return nil
		},
		stop: func(ctx context.Context) error {
			h.signals.Store(nil)
			return c.Stop(ctx)
		}}
}

// emitter is what the event and task centers announce to: nil (no signals) before the signals
// part runs.
func (h *Host) emitter() lifecycle.Emitter {
	if c := h.signals.Load(); c != nil {
		return c
	}
	return nil
}

// Signals is the signal center; nil before Start and after Stop.
func (h *Host) Signals() *signals.Center { return h.signals.Load() }

// SignalsFrom follows this host's signals from just after lastEventID ("" = from now) for GET
// /api/signals/stream; gap says signals after lastEventID may be missing (older than what the
// host keeps).
func (h *Host) SignalsFrom(lastEventID string) (r *signals.Reader, gap bool, err error) {
	c := h.signals.Load()
	if c == nil {
		return nil, false, ErrNotStarted
	}
	return c.Hub().Reader(lastEventID)
}
