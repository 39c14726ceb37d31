package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/trellis-run/trellis/host/execlog"
	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/lifecycle"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/logstore"
)

// A node's hooks and signals (docs/hooks.md). At each moment the listener's hook runs first (when
// it has needRunHook and exports one), then the signal is emitted (always, to Options.Signals).
//
// The node operations (ops.go) announce their moments through nodeMoment: pre/post_pause_node,
// pre/post_resume_node, pre/post_retry_node, pre/post_skip_node, pre/post_forced_fail_activity.
// pipeline_finish is emitted where a request is known to have no node left waiting or running
// (finish.go).

// nodeData is the data argument of a listener's hook: the node as the hook may see and, for the
// hooks that are not read-only, change it.
func nodeData(env *envelope, kwargs any) map[string]any {
	return map[string]any{
		"nodeId": env.NodeID, "requestId": env.RequestID, "fullName": env.Listener, "attempt": int64(env.Attempt),
		"eventId": env.EventID, "kwargs": kwargs, "result": nil, "error": nil,
	}
}

// parentData is the parentData argument of a listener's hook: where the node comes from.
func parentData(env *envelope) map[string]any {
	return map[string]any{"requestId": env.RequestID, "parentNodeId": env.ParentNodeID, "sender": env.Sender, "eventType": env.EventType}
}

// hookNodeID is the log node of one hook of a node: a child of the node, one attempt per try.
func hookNodeID(nodeID string, t lifecycle.Type) string { return nodeID + "." + string(t) }

// callHook runs hook t of l for the node of env, when l has it, and returns data as the hook
// left it (see lifecycle.CallHook) and the hook's log row (ok false when l has no such hook).
// A hook that throws or times out is a failed row of its own and changes nothing.
func (e *Engine) callHook(ctx context.Context, l *Listener, env *envelope, t lifecycle.Type, data map[string]any) (map[string]any, logstore.Row, bool) {
	if !l.Hooks.Has(t) {
		return data, logstore.Row{}, false
	}
	out, r, _ := e.runHook(ctx, l, env, t, data, true)
	return out, r, true
}

// runHook runs hook t of l. With rowOnSuccess false a hook that succeeds makes no row (the zero
// Row): its console output comes back, each line prefixed with the hook's name, for the node's
// own row (the delivery path, where every event pays for each row).
func (e *Engine) runHook(ctx context.Context, l *Listener, env *envelope, t lifecycle.Type, data map[string]any, rowOnSuccess bool) (map[string]any, logstore.Row, []jsvm.LogEntry) {
	parent := parentData(env)
	start := time.Now()
	out, res, err := lifecycle.CallHook(ctx, e.opts.Executor, lifecycle.HookCall{Element: l.FullName, Hook: t, Data: data, ParentData: parent,
		Timeout: l.Timeout, RequestID: env.RequestID, NodeID: hookNodeID(env.NodeID, t)})
	return e.hookDone(l, env, t, data, parent, out, res, err, start, time.Now(), rowOnSuccess)
}

// hookDone is what a hook's call comes to: data as the hook left it (out), and its log row —
// none for a hook that succeeded unless rowOnSuccess, whose console output joins the node's
// instead (returned, prefixed).
func (e *Engine) hookDone(l *Listener, env *envelope, t lifecycle.Type, data, parent, out map[string]any, res jsvm.Result, err error,
	start, end time.Time, rowOnSuccess bool) (map[string]any, logstore.Row, []jsvm.LogEntry) {
	if err == nil && !rowOnSuccess {
		return out, logstore.Row{}, lifecycle.PrefixLogs(t, res.Logs)
	}
	kwargs, _ := json.Marshal([]any{data, parent})
	r := e.opts.Log.Row(execlog.Node{Kind: logstore.KindHook, FullName: l.FullName, Sender: l.FullName + "." + string(t), EventType: string(t),
		EventID: env.EventID, RequestID: env.RequestID, NodeID: hookNodeID(env.NodeID, t), ParentNodeID: env.NodeID, Attempt: env.Attempt,
		CreatedAt: env.CreatedAt, Kwargs: kwargs}, logstore.StatusSuccess, logstore.StageDone, end)
	if execlog.Finish(&r, start, end, res, err) != nil {
		r.Status, r.Stage = logstore.StatusFail, logstore.StageFailed
	}
	return out, r, nil
}

// around is the node_enter and node_finish of l, when it has them, to run with its handler in
// one Execute (jsvm.Around: one trip to a worker instead of three). node_enter gets the node's
// data with the handler's kwargs and may change data.kwargs, which the handler then receives;
// node_finish runs after a handler that ended well, with its value as data.result. The other
// hooks depend on how the run ended and run on their own (run).
func (e *Engine) around(l *Listener, env *envelope, kwargs any) *jsvm.Around {
	var a jsvm.Around
	if l.Hooks.Has(lifecycle.NodeEnter) {
		a.Before = &jsvm.HookStep{Function: string(lifecycle.NodeEnter), Args: []any{nodeData(env, kwargs), parentData(env)},
			Field: "kwargs", NodeID: hookNodeID(env.NodeID, lifecycle.NodeEnter)}
	}
	if l.Hooks.Has(lifecycle.NodeFinish) {
		a.After = &jsvm.HookStep{Function: string(lifecycle.NodeFinish), Args: []any{nodeData(env, decoded(env.Kwargs)), parentData(env)},
			Field: "result", NodeID: hookNodeID(env.NodeID, lifecycle.NodeFinish)}
	}
	if a.Before == nil && a.After == nil {
		return nil
	}
	return &a
}

// aroundDone is hookDone for a hook that ran in an Around (step, as asked; o, what it did);
// value is the handler's value, which node_finish got as data.result.
func (e *Engine) aroundDone(l *Listener, env *envelope, step *jsvm.HookStep, o jsvm.HookOutcome, value any) (map[string]any, logstore.Row, []jsvm.LogEntry) {
	t := lifecycle.Type(o.Function)
	data, _ := step.Args[0].(map[string]any)
	parent, _ := step.Args[1].(map[string]any)
	if t == lifecycle.NodeFinish {
		data[step.Field] = value
	}
	out := data
	var err error
	if o.Err != nil {
		err = o.Err
	} else if len(o.Result.Args) > 0 {
		if d, ok := o.Result.Args[0].(map[string]any); ok {
			out = d
		}
	}
	return e.hookDone(l, env, t, data, parent, out, o.Result, err, o.Start, o.End, false)
}

// signal emits moment t of the node of env to Options.Signals, with the seed's data for t.
func (e *Engine) signal(ctx context.Context, t lifecycle.Type, env *envelope, data map[string]any) {
	if e.opts.Signals == nil {
		return
	}
	if data == nil {
		data = map[string]any{}
	}
	data["node_id"] = env.NodeID
	switch t {
	case lifecycle.PreCallback, lifecycle.PostCallback:
		data["version"] = int64(env.Attempt)
	default:
		data["root_pipeline_id"] = env.RequestID
		data["attempt"] = int64(env.Attempt)
	}
	e.opts.Signals.Emit(ctx, lifecycle.Signal{Type: t, Data: data, At: time.Now(), RequestID: env.RequestID, NodeID: env.NodeID, Element: env.Listener})
}

// requestSignal emits a moment of a request the engine starts (pre/post_prepare_run_pipeline)
// with the seed's data: pipeline is the requestId, root_pipeline_data what started it.
func (e *Engine) requestSignal(ctx context.Context, t lifecycle.Type, requestID, sender, eventType string, kwargs map[string]any) {
	if e.opts.Signals == nil {
		return
	}
	e.opts.Signals.Emit(ctx, lifecycle.Signal{Type: t, At: time.Now(), RequestID: requestID, Data: map[string]any{
		"pipeline":              requestID,
		"root_pipeline_data":    map[string]any{"sender": sender, "eventType": eventType, "kwargs": kwargs},
		"root_pipeline_context": map[string]any{},
		"subprocess_context":    map[string]any{},
	}})
}

// exData is the seed's ex_data of a failed try: the error's message ("" for none).
func exData(res string) map[string]any { return map[string]any{"ex_data": res} }

// envelopeOf rebuilds the envelope of a node from its latest log row, for moments that happen
// outside a delivery (callbacks, and the node operations to come).
func envelopeOf(last logstore.Row) *envelope {
	return &envelope{EventID: last.EventID, Sender: last.Sender, EventType: last.EventType, Kwargs: last.Kwargs, Listener: last.FullName,
		RequestID: last.RequestID, NodeID: last.NodeID, ParentNodeID: last.ParentNodeID, Attempt: last.Attempt, CreatedAt: last.CreatedAt}
}

// listenerNamed is the listener of the current app version named fullName, or nil.
func (e *Engine) listenerNamed(s *registry.Snapshot, fullName string) *Listener {
	for _, l := range e.listeners(s) {
		if l.FullName == fullName {
			return l
		}
	}
	return nil
}

// NodeHook is how a node operation announces moment t of an event node: it runs the listener's
// hook t (when the listener has needRunHook and exports it) with the node's data plus the fields
// of extra, writes the hook's row, and emits the signal with extra as its data (node_id and the
// seed's other fields added). It answers data as the hook left it (for a read-only hook, as
// given). The hook's failure is in its row, not in the error: err is only for an unknown node
// (ErrNotFound) or one that is not an event node (ErrConflict).
func (e *Engine) NodeHook(ctx context.Context, nodeID string, t lifecycle.Type, extra map[string]any) (map[string]any, error) {
	last, err := e.latestState(ctx, nodeID)
	if err != nil {
		return nil, err
	}
	if last.Kind != logstore.KindEvent {
		return nil, fmt.Errorf("%w: node %s is a %s run, not an event delivery", ErrConflict, nodeID, last.Kind)
	}
	env := envelopeOf(last)
	return e.nodeMoment(ctx, e.listenerNamed(e.opts.Snapshot(), last.FullName), env, t, extra, copyMap(extra)), nil
}

// nodeMoment runs hook t of l (nil: none) on the node of env with hookExtra added to its data,
// writes the hook's row, and emits the signal with sigData.
func (e *Engine) nodeMoment(ctx context.Context, l *Listener, env *envelope, t lifecycle.Type, hookExtra, sigData map[string]any) map[string]any {
	var out map[string]any
	if l != nil && l.Hooks.Has(t) {
		data := nodeData(env, decoded(env.Kwargs))
		for k, v := range hookExtra {
			data[k] = v
		}
		var row logstore.Row
		out, row, _ = e.callHook(ctx, l, env, t, data)
		e.writeRows(ctx, row)
	}
	e.signal(ctx, t, env, sigData)
	return out
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// errorData is a failed try's error as hook data: {code, message}.
func errorData(re *logstore.RowError) map[string]any {
	if re == nil {
		return nil
	}
	return map[string]any{"code": re.Code, "message": re.Message}
}

// keepErrorMessage applies what a node_execute_fail or node_execute_exception hook did to
// data.error: a new message (a string) replaces the saved one; the code and stack stay.
func keepErrorMessage(re *logstore.RowError, data map[string]any) {
	if re == nil {
		return
	}
	if m, ok := data["error"].(map[string]any); ok {
		if msg, ok := m["message"].(string); ok {
			re.Message = msg
		}
	}
}
