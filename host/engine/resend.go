package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/trellis-run/trellis/logstore"
)

// ResendResult is resend's answer (CONTRACT §2).
type ResendResult struct {
	NodeID  string `json:"nodeId"`
	Attempt int    `json:"attempt"`
}

// Resend runs a finished node again — a dead letter, a failure or a success — as its next
// attempt, with the same event id, kwargs and place in the call tree. A node still waiting or
// running is refused with ErrConflict: it has a run in hand already.
func (e *Engine) Resend(ctx context.Context, nodeID string) (ResendResult, error) {
	last, err := e.latestState(ctx, nodeID)
	if err != nil {
		return ResendResult{}, err
	}
	if last.Kind != logstore.KindEvent {
		return ResendResult{}, fmt.Errorf("%w: node %s is a %s run, not an event delivery; only event nodes can be resent", ErrConflict, nodeID, last.Kind)
	}
	if last.Status != logstore.StatusSuccess && last.Status != logstore.StatusFail {
		return ResendResult{}, fmt.Errorf("%w: node %s is %s/%s; resend it once it has finished", ErrConflict, nodeID, last.Status, last.Stage)
	}
	var listener *Listener
	for _, l := range e.listeners(e.opts.Snapshot()) {
		if l.FullName == last.FullName {
			listener = l
		}
	}
	if listener == nil || !listener.Enabled {
		return ResendResult{}, fmt.Errorf("%w: listener %s of node %s is gone or disabled", ErrNotFound, last.FullName, nodeID)
	}
	if listener.HandlerType == HandlerBroadcast {
		// Its queue reaches every host: a resend would run on all of them again.
		return ResendResult{}, fmt.Errorf("%w: node %s belongs to broadcast listener %s; resending broadcast deliveries is not supported yet", ErrConflict, nodeID, listener.FullName)
	}
	now := time.Now()
	env := &envelope{
		EventID: last.EventID, Sender: last.Sender, EventType: last.EventType, Kwargs: last.Kwargs, Listener: last.FullName,
		RequestID: last.RequestID, NodeID: last.NodeID, ParentNodeID: last.ParentNodeID, Attempt: last.Attempt + 1,
		CreatedAt: last.CreatedAt, SentAt: now,
	}
	if env.EventID == "" {
		env.EventID = NewID("evt_") // a node logged before event ids were recorded
	}
	queued := e.row(env, logstore.StatusWaiting, stageResent, now)
	if err := e.publish(ctx, []delivery{{listener, env}}); err != nil {
		return ResendResult{}, err
	}
	e.writeRows(ctx, queued)
	return ResendResult{NodeID: nodeID, Attempt: env.Attempt}, nil
}
