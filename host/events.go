package host

import (
	"context"

	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/logstore"
)

// eventsPart is the event center: the engine on the backends' bus, there to send events from
// the moment the parts after it start. It consumes (runs listeners) only from servePart, once
// every part a handler may use is up. Without a bus (Backends.BusUnavailable) sendEvent says why
// instead.
func (h *Host) eventsPart() part {
	return part{name: "the event center",
		start: func(ctx context.Context) error {
			b := h.backends.Load()
			if b.Bus == nil {
				return nil
			}
			exec, _ := h.executor()
			e, err := engine.New(engine.Options{
				Bus: b.Bus, Executor: exec, Log: h.rec.Load(), Store: b.Logs, Snapshot: h.Snapshot,
				HostName: h.machine, InstanceID: h.instance,
				MaxKwargsBytes: h.cfg.MaxKwargsBytes, MaxValueDepth: h.cfg.Limits.MaxValueDepth, ClaimAfter: h.cfg.ClaimAfter, LagEvery: h.cfg.LagEvery,
				Signals: h.emitter(), Requests: b.Requests, Logger: h.cfg.Logger, RequestTasks: h.requestTasks,
			})
			if err != nil {
				return err
			}
			h.events.Store(e)
			return nil
		},
		stop: func(context.Context) error {
			h.events.Store(nil)
			return nil
		}}
}

// engine is the running event center, or why there is none.
func (h *Host) engine() (*engine.Engine, error) {
	if e := h.events.Load(); e != nil {
		return e, nil
	}
	if b := h.backends.Load(); b != nil && b.BusUnavailable != nil {
		return nil, b.BusUnavailable
	}
	return nil, ErrNotStarted
}

// SendEvent is sendEvent: EventSvc's and POST /api/events/send's.
func (h *Host) SendEvent(ctx context.Context, req engine.SendRequest) (engine.SendResult, error) {
	e, err := h.engine()
	if err != nil {
		return engine.SendResult{}, err
	}
	return e.SendEvent(ctx, req)
}

// EventLag is the backlog of each listener, for /api/health.
func (h *Host) EventLag(ctx context.Context) (map[string][]bus.GroupLag, error) {
	if e := h.events.Load(); e != nil {
		return e.Lag(ctx)
	}
	return nil, nil
}

// Callback completes a node waiting for its callback (POST /api/nodes/{id}/callback).
func (h *Host) Callback(ctx context.Context, nodeID string, data any) (engine.CallbackResult, error) {
	e, err := h.engine()
	if err != nil {
		return engine.CallbackResult{}, err
	}
	return e.Callback(ctx, nodeID, data)
}

// EventStats are the event center's counters: events sent and deliveries finished.
func (h *Host) EventStats() engine.Stats {
	if e := h.events.Load(); e != nil {
		return e.Stats()
	}
	return engine.Stats{}
}

// Resend runs a finished event node again (EventSvc.resend, POST /api/nodes/{id}/resend).
func (h *Host) Resend(ctx context.Context, nodeID string) (engine.ResendResult, error) {
	e, err := h.engine()
	if err != nil {
		return engine.ResendResult{}, err
	}
	return e.Resend(ctx, nodeID)
}

// BulkResend resends every node the log query matches (engine.BulkResend says how).
func (h *Host) BulkResend(ctx context.Context, q logstore.Query) (engine.BulkResendResult, error) {
	e, err := h.engine()
	if err != nil {
		return engine.BulkResendResult{}, err
	}
	return e.BulkResend(ctx, q)
}

// NodeOp runs node operation op — pause, resume, retry, skip or forcedFail — on a node
// (EventSvc, POST /api/nodes/{id}/{op}, `trellis node OP ID`): a task node (an id the task store
// knows) goes to the task center (tasks.Center.NodeOp), any other to the event center
// (engine.Engine.NodeOp); each says what data its operations take.
func (h *Host) NodeOp(ctx context.Context, op, nodeID string, data any) (any, error) {
	if c := h.Tasks(); c != nil {
		isTask, err := c.IsTaskNode(ctx, nodeID)
		if err != nil {
			return nil, err
		}
		if isTask {
			return c.NodeOp(ctx, op, nodeID, data)
		}
	}
	e, err := h.engine()
	if err != nil {
		return nil, err
	}
	return e.NodeOp(ctx, op, nodeID, data)
}

// requestTasks is the task side of a request operation (engine.Options.RequestTasks): the task
// center's, on the request's timer tasks.
func (h *Host) requestTasks(ctx context.Context, op, requestID string) ([]string, error) {
	c := h.Tasks()
	if c == nil {
		return nil, nil
	}
	return c.RequestOp(ctx, op, requestID)
}

// RequestOp runs request operation op — pause, resume or revoke — on a request: its event
// nodes and its task nodes.
func (h *Host) RequestOp(ctx context.Context, op, requestID string) (engine.RequestOpResult, error) {
	e, err := h.engine()
	if err != nil {
		return engine.RequestOpResult{}, err
	}
	return e.RequestOp(ctx, op, requestID)
}
