package host

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/host/bus/localbus"
	"github.com/trellis-run/trellis/host/bus/redisbus"
	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/logstore"
)

// eventCenter is the host's bus and engine. bus is nil when this process may not use the
// embedded bus (a `trellis call` beside a running `serve`); unavailable then says why.
type eventCenter struct {
	bus         bus.Bus
	engine      *engine.Engine
	unavailable error
}

// openEventCenter opens the bus and makes the engine; with cfg.ServeEvents it also starts
// consuming, so this host runs listeners.
func (h *Host) openEventCenter(ctx context.Context, exec jsvm.Executor, log *execLog) (*eventCenter, error) {
	ec := &eventCenter{}
	var (
		b   bus.Bus
		err error
	)
	if h.cfg.RedisURL != "" {
		// Hosts of one cluster share the app's streams; apps on one Redis stay apart.
		b, err = redisbus.New(redisbus.Options{URL: h.cfg.RedisURL, Prefix: "trellis:" + h.Snapshot().App.Name + ":"})
	} else {
		b, err = localbus.Open(filepath.Join(h.cfg.DataDir, "bus"), localbus.Options{})
	}
	if err != nil {
		if errors.Is(err, localbus.ErrLocked) && !h.cfg.ServeEvents {
			ec.unavailable = fmt.Errorf("%w: another trellis process (a running serve) owns the embedded event bus of %s; "+
				"send events through its HTTP API, or run every host on --redis", engine.ErrUnavailable, h.cfg.DataDir)
			return ec, nil
		}
		return nil, fmt.Errorf("host: open the event bus: %w", err)
	}
	ec.bus = b
	ec.engine, err = engine.New(engine.Options{
		Bus: b, Executor: exec, Log: log.writer, Store: log.store, Snapshot: h.Snapshot, MaxKwargsBytes: h.cfg.MaxKwargsBytes,
		ClaimAfter: h.cfg.ClaimAfter, LagEvery: h.cfg.LagEvery,
	})
	if err == nil && h.cfg.ServeEvents {
		err = ec.engine.Start(ctx)
	}
	if err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("host: start the event center: %w", err)
	}
	return ec, nil
}

func (ec *eventCenter) close(ctx context.Context) error {
	if ec.bus == nil {
		return nil
	}
	return errors.Join(ec.engine.Stop(ctx), ec.bus.Close())
}

// SendEvent is sendEvent: EventSvc's and POST /api/events/send's.
func (h *Host) SendEvent(ctx context.Context, req engine.SendRequest) (engine.SendResult, error) {
	ec := h.events.Load()
	if ec == nil {
		return engine.SendResult{}, ErrNotStarted
	}
	if ec.engine == nil {
		return engine.SendResult{}, ec.unavailable
	}
	return ec.engine.SendEvent(ctx, req)
}

// EventLag is the backlog of each listener, for /api/health.
func (h *Host) EventLag(ctx context.Context) (map[string][]bus.GroupLag, error) {
	ec := h.events.Load()
	if ec == nil || ec.engine == nil {
		return nil, nil
	}
	return ec.engine.Lag(ctx)
}

// Callback completes a node waiting for its callback (POST /api/nodes/{id}/callback).
func (h *Host) Callback(ctx context.Context, nodeID string, data any) (engine.CallbackResult, error) {
	ec := h.events.Load()
	if ec == nil {
		return engine.CallbackResult{}, ErrNotStarted
	}
	if ec.engine == nil {
		return engine.CallbackResult{}, ec.unavailable
	}
	return ec.engine.Callback(ctx, nodeID, data)
}

// EventStats are the event center's counters: events sent and deliveries finished.
func (h *Host) EventStats() engine.Stats {
	if ec := h.events.Load(); ec != nil && ec.engine != nil {
		return ec.engine.Stats()
	}
	return engine.Stats{}
}

// Resend runs a finished event node again (EventSvc.resend, POST /api/nodes/{id}/resend).
func (h *Host) Resend(ctx context.Context, nodeID string) (engine.ResendResult, error) {
	ec := h.events.Load()
	if ec == nil {
		return engine.ResendResult{}, ErrNotStarted
	}
	if ec.engine == nil {
		return engine.ResendResult{}, ec.unavailable
	}
	return ec.engine.Resend(ctx, nodeID)
}

// MaxBulkResend caps the nodes one bulk resend touches, so a careless query cannot flood the bus.
const MaxBulkResend = 10000

// BulkResendResult says what a bulk resend did with each node its query matched.
type BulkResendResult struct {
	Resent  []engine.ResendResult `json:"resent"`
	Skipped []BulkResendSkip      `json:"skipped"`
	// Truncated is true when the query matched more than MaxBulkResend nodes.
	Truncated bool `json:"truncated"`
}

// BulkResendSkip is a matched node that was not resent, and why.
type BulkResendSkip struct {
	NodeID string `json:"nodeId"`
	Reason string `json:"reason"`
}

// BulkResend resends every node the log query matches (the console's "resend all failed of
// this listener today"), up to MaxBulkResend; nodes that cannot be resent are listed with why.
func (h *Host) BulkResend(ctx context.Context, q logstore.Query) (BulkResendResult, error) {
	store := h.LogStore()
	if store == nil {
		return BulkResendResult{}, ErrNotStarted
	}
	if q.Status == "" {
		q.Status = logstore.StatusFail
	}
	q.Page, q.PageSize = 1, logstore.MaxPageSize
	var nodes []string
	for len(nodes) < MaxBulkResend+1 {
		page, err := store.Query(ctx, q)
		if err != nil {
			return BulkResendResult{}, err
		}
		for _, r := range page.RowDatas {
			nodes = append(nodes, r.NodeID)
		}
		if len(page.RowDatas) < q.PageSize {
			break
		}
		q.Page++
	}
	res := BulkResendResult{Resent: []engine.ResendResult{}, Skipped: []BulkResendSkip{}}
	if len(nodes) > MaxBulkResend {
		nodes, res.Truncated = nodes[:MaxBulkResend], true
	}
	for _, n := range nodes {
		r, err := h.Resend(ctx, n)
		if err != nil {
			if errors.Is(err, engine.ErrUnavailable) || errors.Is(err, ErrNotStarted) {
				return res, err
			}
			res.Skipped = append(res.Skipped, BulkResendSkip{NodeID: n, Reason: err.Error()})
			continue
		}
		res.Resent = append(res.Resent, r)
	}
	return res, nil
}
