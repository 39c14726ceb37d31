package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/trellis-run/trellis/host/lifecycle"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

// Node and request operations (docs/events.md, "Operations"; the state table is in
// docs/reference.md §5). Each reads the node's latest log row, refuses with ErrConflict (naming
// the state) what that state does not allow, runs the node's pre hook and signal, records the
// change (a control record every host reads, control.go, and a log row), then the post hook
// and signal.

// ErrNotBuilt: an operation Trellis does not serve for this kind of node yet.
var ErrNotBuilt = vocab.Sentinel(vocab.CodeNotImplemented, "engine: not available in this version")

// OpResult is a node operation's answer: the node and the state it is in now.
type OpResult struct {
	NodeID  string `json:"nodeId"`
	Status  string `json:"status"`
	Stage   string `json:"stage"`
	Attempt int    `json:"attempt"`
}

// RequestOpResult is a request operation's answer: the request, its state now, and the nodes
// the operation changed.
type RequestOpResult struct {
	RequestID string   `json:"requestId"`
	State     string   `json:"state"`
	Nodes     []string `json:"nodes"`
}

// waitingStages are the stages of a node that has not run its current attempt yet.
var waitingStages = []string{logstore.StageQueued, logstore.StageResent, logstore.StageRetryScheduled, logstore.StageRequeued, logstore.StagePaused}

func isWaiting(r logstore.Row) bool {
	return r.Status == logstore.StatusWaiting && slices.Contains(waitingStages, r.Stage)
}

func isRunning(r logstore.Row) bool {
	return r.Status == logstore.StatusRunning
}

// nextAttempt is the attempt a waiting node's next run will be: a failed try waiting for its
// retry runs as the next one.
func nextAttempt(r logstore.Row) int {
	if r.Stage == logstore.StageRetryScheduled || r.Stage == logstore.StageRequeued {
		return r.Attempt + 1
	}
	return r.Attempt
}

// opNode is the latest state of an event node an operation applies to.
func (e *Engine) opNode(ctx context.Context, op, nodeID string) (logstore.Row, error) {
	if err := e.syncControl(ctx); err != nil {
		return logstore.Row{}, err
	}
	last, err := e.latestState(ctx, nodeID)
	if err != nil {
		return logstore.Row{}, err
	}
	if last.Kind != logstore.KindEvent {
		return logstore.Row{}, fmt.Errorf("%w: %s of a %s node (%s) is not built yet; only event nodes have it", ErrNotBuilt, op, last.Kind, nodeID)
	}
	if st := e.control.requestState(last.RequestID); st == "revoked" {
		return logstore.Row{}, fmt.Errorf("%w: node %s is %s/%s and its request %s is revoked", ErrConflict, nodeID, last.Status, last.Stage, last.RequestID)
	}
	return last, nil
}

func refuse(op string, last logstore.Row, allowed string) error {
	return fmt.Errorf("%w: cannot %s node %s: it is %s/%s; %s", ErrConflict, op, last.NodeID, last.Status, last.Stage, allowed)
}

// nodeOp runs one node operation: pre moment, record (control and row), post moment.
func (e *Engine) nodeOp(ctx context.Context, last logstore.Row, pre, post lifecycle.Type, sig map[string]any, rec *controlRec, row logstore.Row) (OpResult, error) {
	l := e.listenerNamed(e.opts.Snapshot(), last.FullName)
	env := envelopeOf(last)
	e.nodeMoment(ctx, l, env, pre, copyMap(sig), copyMap(sig))
	if rec != nil {
		if err := e.publishControl(ctx, *rec); err != nil {
			return OpResult{}, err
		}
	}
	if err := e.opts.Log.WriteErr(ctx, row); err != nil {
		return OpResult{}, fmt.Errorf("engine: record %s of %s: %w", row.Stage, last.NodeID, err)
	}
	e.nodeMoment(ctx, l, env, post, copyMap(sig), copyMap(sig))
	if !row.EndTime.IsZero() {
		e.closeNode(ctx, last.RequestID, last.NodeID) // skipped: the node ended
	}
	return OpResult{NodeID: last.NodeID, Status: row.Status, Stage: row.Stage, Attempt: row.Attempt}, nil
}

// PauseNode holds a waiting node (queued, resent, retryScheduled, requeued): it does not run
// until ResumeNode; a host that takes its delivery meanwhile moves it to the held queue (held.go).
func (e *Engine) PauseNode(ctx context.Context, nodeID string) (OpResult, error) {
	last, err := e.opNode(ctx, "pause", nodeID)
	if err != nil {
		return OpResult{}, err
	}
	if !isWaiting(last) || last.Stage == logstore.StagePaused {
		return OpResult{}, refuse("pause", last, "only a waiting node (queued, resent, retryScheduled, requeued) can be paused")
	}
	r := e.opts.Log.Next(last, logstore.StatusWaiting, logstore.StagePaused, time.Now())
	r.Attempt = nextAttempt(last)
	return e.nodeOp(ctx, last, lifecycle.PrePauseNode, lifecycle.PostPauseNode, nil,
		&controlRec{Op: ctlPauseNode, NodeID: nodeID, RequestID: last.RequestID, Attempt: r.Attempt}, r)
}

// ResumeNode lets a paused node run (it is queued again; a host holding it runs it).
func (e *Engine) ResumeNode(ctx context.Context, nodeID string) (OpResult, error) {
	last, err := e.opNode(ctx, "resume", nodeID)
	if err != nil {
		return OpResult{}, err
	}
	// A node paused with its request (not on its own) resumes with the request; a node whose
	// pause this host has not read yet counts as paused on its own when its request is not.
	if last.Stage != logstore.StagePaused || (!e.control.nodePaused(nodeID) && e.control.requestState(last.RequestID) == "paused") {
		return OpResult{}, refuse("resume", last, "only a paused node can be resumed (a node paused with its request resumes with the request)")
	}
	r := e.opts.Log.Next(last, logstore.StatusWaiting, logstore.StageQueued, time.Now())
	return e.nodeOp(ctx, last, lifecycle.PreResumeNode, lifecycle.PostResumeNode, nil,
		&controlRec{Op: ctlResumeNode, NodeID: nodeID, RequestID: last.RequestID, Attempt: last.Attempt}, r)
}

// SkipNode ends a failed or waiting node as a success that never ran (success/skipped).
func (e *Engine) SkipNode(ctx context.Context, nodeID string) (OpResult, error) {
	last, err := e.opNode(ctx, "skip", nodeID)
	if err != nil {
		return OpResult{}, err
	}
	waiting := isWaiting(last)
	if !waiting && last.Status != logstore.StatusFail {
		return OpResult{}, refuse("skip", last, "only a failed or waiting node can be skipped")
	}
	now := time.Now()
	r := e.opts.Log.Next(last, logstore.StatusSuccess, logstore.StageSkipped, now)
	r.EndTime = now
	var rec *controlRec
	if waiting {
		r.Attempt = nextAttempt(last)
		rec = &controlRec{Op: ctlSkipNode, NodeID: nodeID, RequestID: last.RequestID, Attempt: r.Attempt}
	}
	return e.nodeOp(ctx, last, lifecycle.PreSkipNode, lifecycle.PostSkipNode, nil, rec, r)
}

// ForcedFailNode ends a waiting or running node as failed (fail/forcedFail): a waiting one
// never runs, a running handler is cancelled on whichever host runs it.
func (e *Engine) ForcedFailNode(ctx context.Context, nodeID, reason string) (OpResult, error) {
	last, err := e.opNode(ctx, "forcedFail", nodeID)
	if err != nil {
		return OpResult{}, err
	}
	if !isWaiting(last) && !isRunning(last) {
		return OpResult{}, refuse("forcedFail", last, "only a waiting or running node can be force-failed")
	}
	if reason == "" {
		reason = "the node was force-failed"
	}
	now := time.Now()
	r := e.opts.Log.Next(last, logstore.StatusFail, logstore.StageForcedFail, now)
	r.EndTime = now
	if isWaiting(last) {
		r.Attempt = nextAttempt(last)
	} else if !last.StartTime.IsZero() {
		r.Duration = now.Sub(last.StartTime).Milliseconds()
	}
	r.Error = &logstore.RowError{Code: logstore.StageForcedFail, Message: reason}
	sig := map[string]any{"ex_data": reason}
	l := e.listenerNamed(e.opts.Snapshot(), last.FullName)
	env := envelopeOf(last)
	e.nodeMoment(ctx, l, env, lifecycle.PreForcedFailActivity, copyMap(sig), copyMap(sig))
	if err := e.publishControl(ctx, controlRec{Op: ctlForcedFail, NodeID: nodeID, RequestID: last.RequestID, Attempt: r.Attempt}); err != nil {
		return OpResult{}, err
	}
	if err := e.opts.Log.WriteErr(ctx, r); err != nil {
		return OpResult{}, fmt.Errorf("engine: record forcedFail of %s: %w", nodeID, err)
	}
	sig["old_version"], sig["new_version"] = int64(last.Attempt), int64(r.Attempt)
	e.nodeMoment(ctx, l, env, lifecycle.PostForcedFailActivity, copyMap(sig), copyMap(sig))
	e.closeNode(ctx, last.RequestID, nodeID)
	return OpResult{NodeID: nodeID, Status: r.Status, Stage: r.Stage, Attempt: r.Attempt}, nil
}

// RetryNode runs a failed node again as its next attempt, like resend but only from failure;
// kwargs, when not nil, replace the node's kwargs for this and later attempts.
func (e *Engine) RetryNode(ctx context.Context, nodeID string, kwargs map[string]any) (ResendResult, error) {
	last, err := e.opNode(ctx, "retry", nodeID)
	if err != nil {
		return ResendResult{}, err
	}
	if last.Status != logstore.StatusFail {
		return ResendResult{}, refuse("retry", last, "only a failed node can be retried (resend runs a finished one again)")
	}
	var raw json.RawMessage
	if kwargs != nil {
		if vocab.DeeperThan(kwargs, e.opts.MaxValueDepth) {
			return ResendResult{}, fmt.Errorf("%w: retry data nests deeper than %d levels (the nesting cap, --max-depth); flatten it", ErrInvalidEvent, e.opts.MaxValueDepth)
		}
		if raw, err = json.Marshal(kwargs); err != nil {
			return ResendResult{}, fmt.Errorf("%w: retry data: %v", ErrInvalidEvent, err)
		}
		if len(raw) > e.opts.MaxKwargsBytes {
			return ResendResult{}, fmt.Errorf("%w: retry data is %d bytes, over the %d-byte limit", ErrInvalidEvent, len(raw), e.opts.MaxKwargsBytes)
		}
	}
	sig := map[string]any{"data": kwargs}
	if kwargs == nil {
		sig["data"] = map[string]any{}
	}
	l := e.listenerNamed(e.opts.Snapshot(), last.FullName)
	env := envelopeOf(last)
	e.nodeMoment(ctx, l, env, lifecycle.PreRetryNode, copyMap(sig), copyMap(sig))
	res, err := e.resend(ctx, last, raw)
	if err != nil {
		return ResendResult{}, err
	}
	e.nodeMoment(ctx, l, env, lifecycle.PostRetryNode, copyMap(sig), copyMap(sig))
	return res, nil
}

// requestNodes is the latest state of every node of a request (ErrNotFound for none).
func (e *Engine) requestNodes(ctx context.Context, requestID string) ([]logstore.Row, error) {
	if err := e.syncControl(ctx); err != nil {
		return nil, err
	}
	_ = e.opts.Log.Flush(ctx)
	rows, err := e.opts.Store.ByRequest(ctx, requestID)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: no request %q", ErrNotFound, requestID)
	}
	return rows, nil
}

// requestState names a request's state for operations: revoked, paused, running (a node —
// an event delivery, a task, a call — is waiting or running) or finished.
func (e *Engine) requestStateOf(requestID string, nodes []logstore.Row) string {
	if st := e.control.requestState(requestID); st != "" {
		return st
	}
	for _, n := range nodes {
		if isWaiting(n) || isRunning(n) || (n.Kind == logstore.KindTask && n.Status == logstore.StatusWaiting) {
			return "running"
		}
	}
	return "finished"
}

// requestTasks applies request operation op to the request's task nodes (Options.RequestTasks)
// before the control record reaches the event nodes: the task store records the request's
// state atomically with its tasks, and repeating the operation there changes nothing more, so
// an operation that fails after it can be run again.
func (e *Engine) requestTasks(ctx context.Context, op, requestID string) ([]string, error) {
	if e.opts.RequestTasks == nil {
		return nil, nil
	}
	nodes, err := e.opts.RequestTasks(ctx, op, requestID)
	if err != nil {
		return nil, fmt.Errorf("engine: %s the task nodes of request %s: %w", op, requestID, err)
	}
	return nodes, nil
}

func (e *Engine) requestSignal2(ctx context.Context, t lifecycle.Type, requestID string, data map[string]any) {
	if e.opts.Signals == nil {
		return
	}
	e.opts.Signals.Emit(ctx, lifecycle.Signal{Type: t, At: time.Now(), RequestID: requestID, Data: data})
}

// PauseRequest holds every waiting node of a running request — its event nodes and its task
// nodes (Options.RequestTasks) — and every node created in it later, until ResumeRequest.
func (e *Engine) PauseRequest(ctx context.Context, requestID string) (RequestOpResult, error) {
	nodes, err := e.requestNodes(ctx, requestID)
	if err != nil {
		return RequestOpResult{}, err
	}
	if st := e.requestStateOf(requestID, nodes); st != "running" {
		return RequestOpResult{}, fmt.Errorf("%w: cannot pause request %s: it is %s; only a running request (a node waiting or running) can be paused", ErrConflict, requestID, st)
	}
	e.requestSignal2(ctx, lifecycle.PrePausePipeline, requestID, map[string]any{"pipeline": requestID})
	tasks, err := e.requestTasks(ctx, "pause", requestID)
	if err != nil {
		return RequestOpResult{}, err
	}
	now := time.Now()
	var rows []logstore.Row
	changed := []string{}
	for _, n := range nodes {
		if n.Kind == logstore.KindEvent && isWaiting(n) && n.Stage != logstore.StagePaused {
			r := e.opts.Log.Next(n, logstore.StatusWaiting, logstore.StagePaused, now)
			r.Attempt = nextAttempt(n)
			rows, changed = append(rows, r), append(changed, n.NodeID)
		}
	}
	if err := e.publishControl(ctx, controlRec{Op: ctlPauseRequest, RequestID: requestID, Ended: changed}); err != nil {
		return RequestOpResult{}, err
	}
	if err := e.opts.Log.WriteErr(ctx, rows...); err != nil {
		return RequestOpResult{}, fmt.Errorf("engine: record the pause of %s: %w", requestID, err)
	}
	e.requestSignal2(ctx, lifecycle.PostPausePipeline, requestID, map[string]any{"pipeline_id": requestID})
	return RequestOpResult{RequestID: requestID, State: "paused", Nodes: append(changed, tasks...)}, nil
}

// ResumeRequest lets the nodes of a paused request run, event and task nodes (those paused one
// by one stay paused); a timer task due meanwhile runs at once.
func (e *Engine) ResumeRequest(ctx context.Context, requestID string) (RequestOpResult, error) {
	nodes, err := e.requestNodes(ctx, requestID)
	if err != nil {
		return RequestOpResult{}, err
	}
	if st := e.requestStateOf(requestID, nodes); st != "paused" {
		return RequestOpResult{}, fmt.Errorf("%w: cannot resume request %s: it is %s; only a paused request can be resumed", ErrConflict, requestID, st)
	}
	e.requestSignal2(ctx, lifecycle.PreResumePipeline, requestID, map[string]any{"pipeline_id": requestID})
	tasks, err := e.requestTasks(ctx, "resume", requestID)
	if err != nil {
		return RequestOpResult{}, err
	}
	now := time.Now()
	var rows []logstore.Row
	changed := []string{}
	for _, n := range nodes {
		if n.Kind == logstore.KindEvent && n.Stage == logstore.StagePaused && !e.control.nodePaused(n.NodeID) {
			rows, changed = append(rows, e.opts.Log.Next(n, logstore.StatusWaiting, logstore.StageQueued, now)), append(changed, n.NodeID)
		}
	}
	// The rows first: a host holding a node runs it as soon as it reads the record.
	if err := e.opts.Log.WriteErr(ctx, rows...); err != nil {
		return RequestOpResult{}, fmt.Errorf("engine: record the resume of %s: %w", requestID, err)
	}
	if err := e.publishControl(ctx, controlRec{Op: ctlResumeRequest, RequestID: requestID}); err != nil {
		return RequestOpResult{}, err
	}
	e.requestSignal2(ctx, lifecycle.PostResumePipeline, requestID, map[string]any{"pipeline_id": requestID})
	return RequestOpResult{RequestID: requestID, State: "running", Nodes: append(changed, tasks...)}, nil
}

// RevokeRequest ends every waiting or paused node of a request, event and task nodes, as
// fail/revoked; an event node created in it later ends so when a host takes it, a task node
// when it is created. Running handlers and task runs finish (a task run that fails is not
// retried).
func (e *Engine) RevokeRequest(ctx context.Context, requestID string) (RequestOpResult, error) {
	nodes, err := e.requestNodes(ctx, requestID)
	if err != nil {
		return RequestOpResult{}, err
	}
	if st := e.requestStateOf(requestID, nodes); st == "revoked" || st == "finished" {
		return RequestOpResult{}, fmt.Errorf("%w: cannot revoke request %s: it is %s; only a running or paused request can be revoked", ErrConflict, requestID, st)
	}
	e.requestSignal2(ctx, lifecycle.PreRevokePipeline, requestID, map[string]any{"pipeline_id": requestID})
	tasks, err := e.requestTasks(ctx, "revoke", requestID)
	if err != nil {
		return RequestOpResult{}, err
	}
	now := time.Now()
	var rows []logstore.Row
	ended := []string{}
	for _, n := range nodes {
		if n.Kind == logstore.KindEvent && isWaiting(n) {
			r := e.opts.Log.Next(n, logstore.StatusFail, logstore.StageRevoked, now)
			r.Attempt, r.EndTime, r.Error = nextAttempt(n), now, revokedError(requestID)
			rows, ended = append(rows, r), append(ended, n.NodeID)
		}
	}
	if err := e.publishControl(ctx, controlRec{Op: ctlRevokeRequest, RequestID: requestID, Ended: ended}); err != nil {
		return RequestOpResult{}, err
	}
	if err := e.opts.Log.WriteErr(ctx, rows...); err != nil {
		return RequestOpResult{}, fmt.Errorf("engine: record the revoke of %s: %w", requestID, err)
	}
	e.requestSignal2(ctx, lifecycle.PostRevokePipeline, requestID, map[string]any{"pipeline_id": requestID})
	for _, n := range ended {
		e.closeNode(ctx, requestID, n)
	}
	return RequestOpResult{RequestID: requestID, State: "revoked", Nodes: append(ended, tasks...)}, nil
}

func revokedError(requestID string) *logstore.RowError {
	return &logstore.RowError{Code: logstore.StageRevoked, Message: fmt.Sprintf("request %s was revoked", requestID)}
}

// NodeOps are the node operations NodeOp serves (callback and resend have their own methods).
var NodeOps = []string{"pause", "resume", "retry", "skip", "forcedFail"}

// RequestOps are the request operations RequestOp serves.
var RequestOps = []string{"pause", "resume", "revoke"}

// NodeOp runs node operation op (one of NodeOps) on nodeID, for EventSvc, HTTP and the CLI.
// data is retry's new kwargs (an object, or nil to keep them) or forcedFail's reason (a
// string, or nil); the other operations take none.
func (e *Engine) NodeOp(ctx context.Context, op, nodeID string, data any) (any, error) {
	switch op {
	case "retry":
		var kwargs map[string]any
		if data != nil {
			m, ok := data.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%w: retry data must be a JSON object (the node's new kwargs), not %T", ErrInvalidEvent, data)
			}
			kwargs = m
		}
		return e.RetryNode(ctx, nodeID, kwargs)
	case "forcedFail":
		reason := ""
		if data != nil {
			s, ok := data.(string)
			if !ok {
				return nil, fmt.Errorf("%w: forcedFail data must be a string (the reason), not %T", ErrInvalidEvent, data)
			}
			reason = s
		}
		return e.ForcedFailNode(ctx, nodeID, reason)
	}
	if data != nil {
		return nil, fmt.Errorf("%w: %s takes no data", ErrInvalidEvent, op)
	}
	switch op {
	case "pause":
		return e.PauseNode(ctx, nodeID)
	case "resume":
		return e.ResumeNode(ctx, nodeID)
	case "skip":
		return e.SkipNode(ctx, nodeID)
	}
	return nil, fmt.Errorf("%w: no node operation %q: use one of %v", ErrInvalidEvent, op, NodeOps)
}

// RequestOp runs request operation op (one of RequestOps) on requestID.
func (e *Engine) RequestOp(ctx context.Context, op, requestID string) (RequestOpResult, error) {
	switch op {
	case "pause":
		return e.PauseRequest(ctx, requestID)
	case "resume":
		return e.ResumeRequest(ctx, requestID)
	case "revoke":
		return e.RevokeRequest(ctx, requestID)
	}
	return RequestOpResult{}, fmt.Errorf("%w: no request operation %q: use one of %v", ErrInvalidEvent, op, RequestOps)
}
