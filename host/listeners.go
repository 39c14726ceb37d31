package host

import "github.com/trellis-run/trellis/host/engine"

// EventListeners is every event listener of the app version this host runs, as the engine reads
// them (GET /api/events/listeners); none before the app is loaded.
func (h *Host) EventListeners() []*engine.Listener {
	s := h.Snapshot()
	if s == nil {
		return nil
	}
	return engine.ListenersOf(s)
}
