package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/trellis-run/trellis/host/vocab"

	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/host/lifecycle"
	"github.com/trellis-run/trellis/logstore"
)

// DefaultEventType is the eventType of sendEvent when none is given.
const DefaultEventType = "events.NormalType"

// ModelEventType is the Type of model listeners; model writes are sent with it.
const ModelEventType = "events.ModelType"

// SendRequest is one sendEvent.
type SendRequest struct {
	Sender    string
	Kwargs    any // must be a JSON object (map[string]any)
	EventType string
	// RequestID and ParentNodeID are set when the event is sent from inside an execution: its
	// nodes join the caller's request as children of the caller's node.
	RequestID    string
	ParentNodeID string
	// Operate and Changed describe a model write (afterCreate/afterUpdate/afterDelete and the
	// fields it changed) so model listeners can filter on their operate and fields.
	Operate string
	Changed []string
}

// SendResult is sendEvent's answer (docs/reference.md §2).
type SendResult struct {
	RequestID   string   `json:"requestId"`
	EventID     string   `json:"eventId"`
	NodeIDs     []string `json:"nodeIds"`
	Subscribers []string `json:"subscribers"`
	// Note says why nothing was delivered when Subscribers is empty.
	Note string `json:"note,omitempty"`
}

// Map is sendEvent's answer as plain values, the form JavaScript receives.
func (res SendResult) Map() map[string]any {
	nodes := make([]any, len(res.NodeIDs))
	for i, n := range res.NodeIDs {
		nodes[i] = n
	}
	subs := make([]any, len(res.Subscribers))
	for i, s := range res.Subscribers {
		subs[i] = s
	}
	out := map[string]any{"requestId": res.RequestID, "eventId": res.EventID, "nodeIds": nodes, "subscribers": subs}
	if res.Note != "" {
		out["note"] = res.Note
	}
	return out
}

// delivery is one node to publish: a listener and the envelope for it.
type delivery struct {
	listener *Listener
	env      *envelope
}

// SendEvent delivers an event to every enabled listener whose sender and eventType match: one
// node per listener (one of each singleton set). It returns once every delivery is durably on the
// bus; if the bus refuses, nothing is reported as sent and the error wraps ErrUnavailable.
func (e *Engine) SendEvent(ctx context.Context, req SendRequest) (SendResult, error) {
	if req.Sender == "" {
		return SendResult{}, fmt.Errorf("%w: sender is empty: name the element the event comes from, such as models.UserModel", ErrInvalidEvent)
	}
	if !vocab.IsFullName(req.Sender) {
		return SendResult{}, fmt.Errorf("%w: sender %.80q is not an element fullName: dot-separated names such as models.UserModel, at most %d bytes", ErrInvalidEvent, req.Sender, vocab.MaxFullName)
	}
	if req.EventType != "" && !vocab.IsFullName(req.EventType) {
		return SendResult{}, fmt.Errorf("%w: eventType %.80q is not an element fullName, such as events.NormalType", ErrInvalidEvent, req.EventType)
	}
	kwargs, ok := req.Kwargs.(map[string]any)
	if !ok {
		return SendResult{}, fmt.Errorf("%w: kwargs must be an object, got %s", ErrInvalidEvent, vocab.Describe(req.Kwargs))
	}
	// Checked before the kwargs are encoded: every retry would pay for them again.
	if vocab.DeeperThan(kwargs, e.opts.MaxValueDepth) {
		return SendResult{}, fmt.Errorf("%w: kwargs nest deeper than %d levels (the nesting cap, --max-depth); flatten them", ErrInvalidEvent, e.opts.MaxValueDepth)
	}
	raw, err := json.Marshal(kwargs)
	if err != nil {
		return SendResult{}, fmt.Errorf("%w: kwargs cannot be sent as JSON: %v", ErrInvalidEvent, err)
	}
	if len(raw) > e.opts.MaxKwargsBytes {
		return SendResult{}, fmt.Errorf("%w: kwargs are %d bytes, more than the limit of %d (--max-kwargs)", ErrInvalidEvent, len(raw), e.opts.MaxKwargsBytes)
	}
	if req.EventType == "" {
		req.EventType = DefaultEventType
	}
	now := time.Now()
	res := SendResult{RequestID: req.RequestID, EventID: vocab.NewID("evt_"), NodeIDs: []string{}, Subscribers: []string{}}
	if res.RequestID == "" {
		res.RequestID = vocab.NewID("req_")
	}
	// A sendEvent from outside any execution starts a request: its prepare moments are announced
	// around the making of its nodes, so they precede every moment of those nodes.
	newRequest := req.RequestID == ""
	if newRequest {
		e.requestSignal(ctx, lifecycle.PrePrepareRunPipeline, res.RequestID, req.Sender, req.EventType, kwargs)
	}
	snap := e.opts.Snapshot()
	if snap.Elements[req.EventType] == nil {
		res.Note = fmt.Sprintf("no element %s: the event was accepted but no listener can hear it", req.EventType)
	}
	targets := e.targets(req, res.EventID)
	if len(targets) == 0 && res.Note == "" {
		res.Note = fmt.Sprintf("no enabled listener of %s listens to sender %s", req.EventType, req.Sender)
	}
	var dels []delivery
	paused := !newRequest && e.control.requestState(res.RequestID) == "paused"
	for _, l := range targets {
		env := &envelope{
			EventID: res.EventID, Sender: req.Sender, EventType: req.EventType, Kwargs: raw, Listener: l.FullName,
			RequestID: res.RequestID, NodeID: vocab.NewID("node_"), ParentNodeID: req.ParentNodeID, Attempt: 1,
			CreatedAt: now, SentAt: now, RequestPaused: paused,
		}
		dels = append(dels, delivery{l, env})
		res.NodeIDs = append(res.NodeIDs, env.NodeID)
		res.Subscribers = append(res.Subscribers, l.FullName)
	}
	// The queued rows are made (and numbered) before the deliveries can run, so they order first.
	rows := make([]logstore.Row, 0, len(dels))
	for _, d := range dels {
		status, stage := logstore.StatusWaiting, logstore.StageQueued
		if d.listener.HandlerType == HandlerBroadcast {
			// Each receiving host runs a child node of its own; this one only records the send.
			status, stage = logstore.StatusSuccess, logstore.StageBroadcast
		}
		rows = append(rows, e.row(d.env, status, stage, now))
	}
	if newRequest {
		e.requestSignal(ctx, lifecycle.PostPrepareRunPipeline, res.RequestID, req.Sender, req.EventType, kwargs)
	}
	var open []string
	for _, d := range dels {
		if d.listener.HandlerType != HandlerBroadcast {
			open = append(open, d.env.NodeID)
		} else {
			open = append(open, e.receiverNodes(d.listener, d.env.NodeID)...)
		}
	}
	if err := e.openAndPublish(ctx, res.RequestID, open, dels); err != nil {
		return SendResult{}, err
	}
	e.writeRows(ctx, rows...)
	e.sent.Add(1)
	return res, nil
}

// targets picks the listeners of an event: every matching pool and broadcast listener, and
// one listener of each matching singleton set (the same one for the same event on every host).
func (e *Engine) targets(req SendRequest, eventID string) []*Listener {
	snap := e.opts.Snapshot()
	var out []*Listener
	singletons := map[string][]*Listener{}
	var setOrder []string
	for _, l := range e.listeners(snap) {
		if !l.Matches(snap, req.Sender, req.EventType) || !l.hearsModelWrite(req) {
			continue
		}
		if l.HandlerType == HandlerSingleton {
			key := l.EventType + "\x00" + l.Sender
			if _, ok := singletons[key]; !ok {
				setOrder = append(setOrder, key)
			}
			singletons[key] = append(singletons[key], l)
			continue
		}
		out = append(out, l)
	}
	for _, key := range setOrder {
		set := singletons[key]
		h := fnv.New32a()
		_, _ = h.Write([]byte(eventID))
		out = append(out, set[int(h.Sum32()%uint32(len(set)))])
	}
	return out
}

// openAndPublish opens the new nodes for pipeline_finish, then publishes the deliveries. The
// open must land first: a delivery can run and close its node on another host (or this one)
// before a write issued beside the publish has landed, and a close that finds its node not yet
// open would leave the request unfinished for ever (measured: 4 % of requests under load lost
// their pipeline_finish when the two were issued together). When the publish fails, the nodes
// just opened are closed again.
func (e *Engine) openAndPublish(ctx context.Context, requestID string, open []string, dels []delivery) error {
	if err := e.openNodes(ctx, requestID, open...); err != nil {
		return err
	}
	if err := e.publish(ctx, dels); err != nil {
		if len(open) > 0 && e.tracking() {
			for _, n := range open {
				_, _ = e.opts.Requests.CloseNode(context.WithoutCancel(ctx), requestID, n)
			}
		}
		return err
	}
	return nil
}

// publish puts each delivery on its listener's topic.
func (e *Engine) publish(ctx context.Context, dels []delivery) error {
	for _, d := range dels {
		payload, err := json.Marshal(d.env)
		if err != nil {
			return fmt.Errorf("engine: encode event: %w", err)
		}
		if _, err := e.opts.Bus.Publish(ctx, d.listener.Topic(), &bus.Message{Payload: payload}); err != nil {
			return fmt.Errorf("%w: publish to %s: %v", ErrUnavailable, d.listener.FullName, err)
		}
	}
	return nil
}
