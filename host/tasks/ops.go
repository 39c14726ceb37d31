package tasks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/trellis-run/trellis/host/lifecycle"
	"github.com/trellis-run/trellis/host/timers"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

// Node operations on task nodes (docs/reference.md §3.10 and §4.4): a task record is a node
// (nodeId = taskId). Each reads the record, refuses with ErrConflict (naming the task's status)
// what its status does not allow, runs the template's pre hook and emits the pre signal
// (NodeHook), changes the record (timers.Store.Operate, atomic: a change that raced it is
// refused there), writes the node's log row, then runs the post hook and signal.

// OpResult is a task node operation's answer, shaped as an event node's: the node's state (its
// latest log row) after the operation, and the task record's status.
type OpResult struct {
	NodeID     string `json:"nodeId"`
	Status     string `json:"status"`
	Stage      string `json:"stage"`
	Attempt    int    `json:"attempt"`
	TaskID     string `json:"taskId"`
	TaskStatus string `json:"taskStatus"`
}

// opAllowed says in words which statuses each operation applies to.
var opAllowed = map[string]string{
	timers.OpPause:      "only a waiting task (scheduled, or waiting for its retry) can be paused",
	timers.OpResume:     "only a paused task can be resumed",
	timers.OpSkip:       "only a waiting, paused or failed task can be skipped",
	timers.OpForcedFail: "only a waiting, paused or running task can be force-failed",
	timers.OpRetry:      "only a failed task can be retried",
}

// opMoments are each operation's hook and signal names (the seed's).
var opMoments = map[string][2]lifecycle.Type{
	timers.OpPause:      {lifecycle.PrePauseNode, lifecycle.PostPauseNode},
	timers.OpResume:     {lifecycle.PreResumeNode, lifecycle.PostResumeNode},
	timers.OpSkip:       {lifecycle.PreSkipNode, lifecycle.PostSkipNode},
	timers.OpForcedFail: {lifecycle.PreForcedFailActivity, lifecycle.PostForcedFailActivity},
	timers.OpRetry:      {lifecycle.PreRetryNode, lifecycle.PostRetryNode},
}

// IsTaskNode says whether nodeID names a task (its id: the task store knows it).
func (c *Center) IsTaskNode(ctx context.Context, nodeID string) (bool, error) {
	if strings.TrimSpace(nodeID) == "" {
		return false, nil
	}
	_, err := c.opts.Store.Get(ctx, nodeID)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, timers.ErrNotFound), errors.Is(err, timers.ErrInvalid):
		return false, nil
	}
	return false, fmt.Errorf("tasks: read task %s: %w", nodeID, err)
}

// NodeOp runs node operation op — pause, resume, skip, forcedFail or retry — on the task whose
// id is nodeID. data: retry's is the new argDict (an object, nil keeps it), forcedFail's the
// reason (a string); the others take none.
func (c *Center) NodeOp(ctx context.Context, op, nodeID string, data any) (OpResult, error) {
	if _, ok := timers.OpFrom[op]; !ok {
		return OpResult{}, fail(ErrInvalidArgument, "no node operation %q for a task: use pause, resume, retry, skip or forcedFail", op)
	}
	var args map[string]any
	reason := ""
	switch op {
	case timers.OpRetry:
		if data != nil {
			m, ok := data.(map[string]any)
			if !ok {
				return OpResult{}, fail(ErrInvalidArgument, "retry data must be an object (the task's new argDict), got %s", vocab.Describe(data))
			}
			args = m
		}
	case timers.OpForcedFail:
		if data != nil {
			s, ok := data.(string)
			if !ok {
				return OpResult{}, fail(ErrInvalidArgument, "forcedFail data must be a string (the reason), got %s", vocab.Describe(data))
			}
			reason = s
		}
	default:
		if data != nil {
			return OpResult{}, fail(ErrInvalidArgument, "%s takes no data", op)
		}
	}
	t, err := c.opts.Store.Get(ctx, nodeID)
	if err != nil {
		return OpResult{}, fmt.Errorf("tasks: %s %s: %w", op, nodeID, err)
	}
	if !slices.Contains(timers.OpFrom[op], t.Status) {
		return OpResult{}, c.refuse(op, t)
	}
	// Its request's operations come first (as for an event node): a task of a revoked request
	// takes none, one its request's pause holds resumes with the request.
	state, err := c.opts.Store.RequestState(ctx, t.RequestID)
	if err != nil {
		return OpResult{}, fmt.Errorf("tasks: %s %s: %w", op, nodeID, err)
	}
	if state == timers.RequestRevoked || (op == timers.OpResume && t.PausedWith == timers.PausedWithRequest) {
		return OpResult{}, c.refuseForRequest(op, t, state)
	}
	if reason == "" {
		reason = "the task was force-failed"
	}
	sig := map[string]any{}
	switch op {
	case timers.OpForcedFail:
		sig["ex_data"] = reason
	case timers.OpRetry:
		sig["data"] = map[string]any{}
		if args != nil {
			sig["data"] = args
		}
	}
	moments := opMoments[op]
	c.NodeHook(ctx, t, moments[0], copyMap(sig))
	terr := &timers.TaskError{Code: logstore.StageForcedFail, Message: reason}
	if op == timers.OpRetry {
		// New work in the task's request: unfinished again until the retry ends.
		if err := c.openNode(ctx, t.RequestID, t.NodeID); err != nil {
			return OpResult{}, err
		}
	}
	nt, err := c.opts.Store.Operate(ctx, t.ID, timers.Op{Name: op, Error: terr, ArgDict: args})
	if errors.Is(err, timers.ErrConflict) && nt.ID != "" {
		// Changed since it was read: the task, or its request.
		if op == timers.OpRetry {
			c.forget(ctx, t.RequestID, t.NodeID)
		}
		if slices.Contains(timers.OpFrom[op], nt.Status) {
			state, _ := c.opts.Store.RequestState(ctx, nt.RequestID)
			return OpResult{}, c.refuseForRequest(op, nt, state)
		}
		return OpResult{}, c.refuse(op, nt)
	}
	if err != nil {
		return OpResult{}, fmt.Errorf("tasks: %s %s: %w", op, nodeID, err)
	}
	r := c.opRow(op, t, nt, reason)
	if err := c.opts.Log.WriteErr(ctx, r); err != nil {
		return OpResult{}, fmt.Errorf("tasks: record %s of %s: %w", op, nodeID, err)
	}
	if op == timers.OpForcedFail {
		sig["old_version"], sig["new_version"] = int64(t.Attempt), int64(nt.Attempt)
	}
	c.NodeHook(ctx, nt, moments[1], copyMap(sig))
	if op == timers.OpResume || op == timers.OpRetry {
		// Due now, maybe: this host's runner looks at once (others within their poll), after the
		// post hook, so this host's run follows the operation's moments.
		c.notify()
	}
	if ended(r) {
		c.closeNode(ctx, nt.RequestID, nt.NodeID) // skipped or force-failed
	}
	return OpResult{NodeID: r.NodeID, Status: r.Status, Stage: r.Stage, Attempt: r.Attempt, TaskID: nt.ID, TaskStatus: nt.Status}, nil
}

func (c *Center) refuse(op string, t timers.Task) error {
	return fail(ErrConflict, "cannot %s task node %s: it is %s; %s", op, t.NodeID, t.Status, opAllowed[op])
}

// refuseForRequest is the refusal of an operation the task's status allows but its request's
// state (timers.Store.OperateRequest) does not.
func (c *Center) refuseForRequest(op string, t timers.Task, requestState string) error {
	if requestState == timers.RequestRevoked {
		return fail(ErrConflict, "cannot %s task node %s: it is %s and its request %s is revoked", op, t.NodeID, t.Status, t.RequestID)
	}
	return fail(ErrConflict, "cannot %s task node %s: it is %s with its request %s; resume the request", op, t.NodeID, t.Status, t.RequestID)
}

// RequestOp applies request operation op (timers.RequestPause, RequestResume or RequestRevoke)
// to the task nodes of requestID, and to those created in it later (docs/tasks.md, "Request
// operations"), and answers the nodes it changed. Each changed node gets its log row: paused;
// waiting again (scheduled, or retryScheduled for a failed try); or fail/revoked, its end. The
// request's hooks and signals are the caller's (the event center announces the request
// operation once for all its nodes).
func (c *Center) RequestOp(ctx context.Context, op, requestID string) ([]string, error) {
	var terr *timers.TaskError
	if op == timers.RequestRevoke {
		terr = &timers.TaskError{Code: logstore.StageRevoked, Message: RevokedMessage(requestID)}
	}
	changed, err := c.opts.Store.OperateRequest(ctx, requestID, op, terr)
	if err != nil {
		if errors.Is(err, timers.ErrInvalid) {
			return nil, fail(ErrInvalidArgument, "%v", err)
		}
		return nil, fmt.Errorf("tasks: %s request %s: %w", op, requestID, err)
	}
	now := time.Now()
	rows := make([]logstore.Row, 0, len(changed))
	nodes := make([]string, 0, len(changed))
	for _, t := range changed {
		rows, nodes = append(rows, c.stateRow(t, now)), append(nodes, t.NodeID)
	}
	if err := c.opts.Log.WriteErr(ctx, rows...); err != nil {
		return nil, fmt.Errorf("tasks: record %s of request %s: %w", op, requestID, err)
	}
	switch op {
	case timers.RequestResume:
		c.notify()
	case timers.RequestRevoke:
		for _, t := range changed {
			c.closeNode(ctx, t.RequestID, t.NodeID)
		}
	}
	return nodes, nil
}

// RevokedMessage is the error message of a node its request's revoke ended.
func RevokedMessage(requestID string) string {
	return fmt.Sprintf("request %s was revoked", requestID)
}

// stateRow is the log row of a task a request operation, or the state of its request when it
// was made or retried, put in status waiting, paused or fail.
func (c *Center) stateRow(t timers.Task, now time.Time) logstore.Row {
	switch t.Status {
	case timers.StatusPaused:
		return c.row(t, logstore.StatusWaiting, logstore.StagePaused, now)
	case timers.StatusFail:
		r := c.row(t, logstore.StatusFail, logstore.StageRevoked, now)
		r.EndTime = now
		r.Error = &logstore.RowError{Code: logstore.StageRevoked, Message: RevokedMessage(t.RequestID)}
		if t.Error != nil {
			r.Error.Message = t.Error.Message
		}
		return r
	}
	stage := logstore.StageScheduled
	if t.Attempt > 0 {
		stage = logstore.StageRetryScheduled // a failed try waiting for its retry
	}
	return c.row(t, logstore.StatusWaiting, stage, now)
}

// opRow is the log row of the task node after operation op changed t to nt.
func (c *Center) opRow(op string, t, nt timers.Task, reason string) logstore.Row {
	now := time.Now()
	if (op == timers.OpResume || op == timers.OpRetry) && nt.Status == timers.StatusPaused {
		// Back to waiting in a paused request: its request's pause holds it.
		r := c.row(nt, logstore.StatusWaiting, logstore.StagePaused, now)
		if op == timers.OpRetry {
			r.Attempt = nt.Attempt + 1 // the next claim's
		}
		return r
	}
	var r logstore.Row
	switch op {
	case timers.OpPause:
		r = c.row(nt, logstore.StatusWaiting, logstore.StagePaused, now)
	case timers.OpResume:
		stage := logstore.StageScheduled
		if nt.Attempt > 0 {
			stage = logstore.StageRetryScheduled // a failed try waiting for its retry
		}
		r = c.row(nt, logstore.StatusWaiting, stage, now)
	case timers.OpSkip:
		r = c.row(nt, logstore.StatusSuccess, logstore.StageSkipped, now)
		r.EndTime = now
	case timers.OpForcedFail:
		r = c.row(nt, logstore.StatusFail, logstore.StageForcedFail, now)
		r.EndTime = now
		if t.Status == timers.StatusRunning && !t.StartedAt.IsZero() {
			r.StartTime = t.StartedAt
			r.Duration = now.Sub(t.StartedAt).Milliseconds()
		}
		r.Error = &logstore.RowError{Code: logstore.StageForcedFail, Message: reason}
	case timers.OpRetry:
		r = c.row(nt, logstore.StatusWaiting, logstore.StageResent, now)
		r.Attempt = nt.Attempt + 1 // the next claim's
	}
	return r
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
