package engine

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

// ResendResult is resend's answer (docs/reference.md §2).
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
	return e.resend(ctx, last, nil)
}

// resend runs the finished node of last again as its next attempt; kwargs, when not nil,
// replace its kwargs (retry with data).
func (e *Engine) resend(ctx context.Context, last logstore.Row, kwargs []byte) (ResendResult, error) {
	nodeID := last.NodeID
	var listener *Listener
	for _, l := range e.listeners(e.opts.Snapshot()) {
		if l.FullName == last.FullName {
			listener = l
		}
	}
	if listener == nil || !listener.Enabled {
		return ResendResult{}, fmt.Errorf("%w: listener %s of node %s is gone or disabled", ErrNotFound, last.FullName, nodeID)
	}
	now := time.Now()
	env := &envelope{
		EventID: last.EventID, Sender: last.Sender, EventType: last.EventType, Kwargs: last.Kwargs, Listener: last.FullName,
		RequestID: last.RequestID, NodeID: last.NodeID, ParentNodeID: last.ParentNodeID, Attempt: last.Attempt + 1,
		CreatedAt: last.CreatedAt, SentAt: now,
	}
	if kwargs != nil {
		env.Kwargs = kwargs
	}
	if env.EventID == "" {
		env.EventID = vocab.NewID("evt_") // a node logged before event ids were recorded
	}
	if listener.HandlerType == HandlerBroadcast {
		return e.resendBroadcast(ctx, listener, last, env)
	}
	queued := e.row(env, logstore.StatusWaiting, logstore.StageResent, now)
	// New work makes a finished request unfinished again (pipeline_finish once more at its end).
	if err := e.openNodes(ctx, env.RequestID, env.NodeID); err != nil {
		return ResendResult{}, err
	}
	if err := e.publish(ctx, []delivery{{listener, env}}); err != nil {
		return ResendResult{}, err
	}
	e.writeRows(ctx, queued)
	return ResendResult{NodeID: nodeID, Attempt: env.Attempt}, nil
}

// receiverSuffix names this host as a receiver of broadcast listener l: the suffix its nodes
// carry after the node recorded at send.
func (e *Engine) receiverSuffix(l *Listener) string {
	return shortHash(l.Group(e.opts.HostName, e.opts.InstanceID))
}

// receiveBroadcast turns a broadcast delivery into this receiver's own node, under the node
// recorded at send. It says false when the delivery is a resend meant for another receiver.
func (e *Engine) receiveBroadcast(ctx context.Context, l *Listener, env *envelope) bool {
	mine := e.receiverSuffix(l)
	if env.Receiver != "" {
		// A resend of one receiver's node: it already carries that node's id and attempt.
		return env.Receiver == mine
	}
	env.ParentNodeID, env.NodeID = env.NodeID, env.NodeID+"."+mine
	if env.ResendAll {
		env.Attempt = 1
		if last, err := e.latestState(ctx, env.NodeID); err == nil {
			env.Attempt = last.Attempt + 1
		}
	}
	return true
}

// resendBroadcast resends a broadcast node: the node recorded at send reaches every receiver
// again; a receiver's node reaches that receiver only, and only while it still has a queue.
func (e *Engine) resendBroadcast(ctx context.Context, l *Listener, last logstore.Row, env *envelope) (ResendResult, error) {
	if last.Stage == logstore.StageBroadcast {
		env.ResendAll = true
		row := e.row(env, logstore.StatusSuccess, logstore.StageBroadcast, env.SentAt)
		if err := e.openNodes(ctx, env.RequestID, e.receiverNodes(l, env.NodeID)...); err != nil {
			return ResendResult{}, err
		}
		if err := e.publish(ctx, []delivery{{l, env}}); err != nil {
			return ResendResult{}, err
		}
		e.writeRows(ctx, row)
		return ResendResult{NodeID: last.NodeID, Attempt: env.Attempt}, nil
	}
	dot := strings.LastIndex(last.NodeID, ".")
	if dot < 0 {
		return ResendResult{}, fmt.Errorf("%w: node %s of broadcast listener %s names no receiver", ErrConflict, last.NodeID, l.FullName)
	}
	env.Receiver = last.NodeID[dot+1:]
	lag, err := e.opts.Bus.Lag(ctx, l.Topic())
	if err != nil {
		return ResendResult{}, fmt.Errorf("%w: read the receivers of %s: %v", ErrUnavailable, l.FullName, err)
	}
	found := false
	for _, g := range lag {
		found = found || shortHash(g.Group) == env.Receiver
	}
	if !found {
		return ResendResult{}, fmt.Errorf("%w: node %s ran on a receiver of broadcast listener %s that no longer has a queue (host %s); resend the broadcast's own node %s to run it on every current receiver",
			ErrConflict, last.NodeID, l.FullName, last.Host, last.ParentNodeID)
	}
	queued := e.row(env, logstore.StatusWaiting, logstore.StageResent, env.SentAt)
	if err := e.openNodes(ctx, env.RequestID, env.NodeID); err != nil {
		return ResendResult{}, err
	}
	if err := e.publish(ctx, []delivery{{l, env}}); err != nil {
		return ResendResult{}, err
	}
	e.writeRows(ctx, queued)
	return ResendResult{NodeID: last.NodeID, Attempt: env.Attempt}, nil
}
