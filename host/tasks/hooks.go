package tasks

import (
	"context"
	"encoding/json"
	"time"

	"github.com/trellis-run/trellis/host/execlog"
	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/lifecycle"
	"github.com/trellis-run/trellis/host/timers"
	"github.com/trellis-run/trellis/logstore"
)

// A task run's hooks and signals (docs/hooks.md), as the engine's for listeners: at each moment
// the template's hook runs first (with needRunHook, when its entry exports it), then the signal
// is emitted (always, to Options.Signals).
//
// The node operations on a task (ops.go: pause, resume, retry, skip, forcedFail) announce
// pre/post_pause_node, pre/post_resume_node, pre/post_retry_node, pre/post_skip_node and
// pre/post_forced_fail_activity through NodeHook. forcedEnd runs no hooks.

// taskData is the data argument of a template's hook.
func taskData(t timers.Task) map[string]any {
	args := t.ArgDict
	if args == nil {
		args = map[string]any{}
	}
	return map[string]any{
		"taskId": t.ID, "nodeId": t.NodeID, "requestId": t.RequestID, "fullName": t.FullName, "funcName": t.FuncName,
		"attempt": int64(t.Attempt), "argDict": args, "result": nil, "error": nil,
	}
}

// taskParentData is the parentData argument of a template's hook: the request the task belongs
// to and what made it (task records do not keep the creating node).
func taskParentData(t timers.Task) map[string]any {
	return map[string]any{"requestId": t.RequestID, "taskType": t.TaskType}
}

// callHook runs hook t of the template of task (when it has it) with data, and answers data as
// the hook left it and the hook's log row (ok false when the template has no such hook). With
// rowOnSuccess false a hook that succeeds makes no row (the zero Row): its console output comes
// back, prefixed with the hook's name, for the run's own row.
func (c *Center) callHook(ctx context.Context, tmpl *Template, task timers.Task, t lifecycle.Type, data map[string]any, rowOnSuccess bool) (map[string]any, logstore.Row, []jsvm.LogEntry, bool) {
	if tmpl == nil || !tmpl.Hooks.Has(t) {
		return data, logstore.Row{}, nil, false
	}
	parent := taskParentData(task)
	hookID := task.NodeID + "." + string(t)
	start := time.Now()
	out, res, err := lifecycle.CallHook(ctx, c.opts.Executor, lifecycle.HookCall{Element: tmpl.FullName, Hook: t, Data: data, ParentData: parent,
		Timeout: tmpl.Timeout, RequestID: task.RequestID, NodeID: hookID})
	end := time.Now()
	if err == nil && !rowOnSuccess {
		return out, logstore.Row{}, lifecycle.PrefixLogs(t, res.Logs), true
	}
	kwargs, _ := json.Marshal([]any{data, parent})
	created := task.CreatedAt
	if created.IsZero() {
		created = start
	}
	r := c.opts.Log.Row(execlog.Node{Kind: logstore.KindHook, FullName: tmpl.FullName, Sender: tmpl.FullName + "." + string(t), EventType: string(t),
		RequestID: task.RequestID, NodeID: hookID, ParentNodeID: task.NodeID, Attempt: task.Attempt, CreatedAt: created, Kwargs: kwargs},
		logstore.StatusSuccess, logstore.StageDone, end)
	if execlog.Finish(&r, start, end, res, err) != nil {
		r.Status, r.Stage = logstore.StatusFail, logstore.StageFailed
	}
	return out, r, nil, true
}

// signal emits moment t of a task run to Options.Signals with the seed's data for t.
func (c *Center) signal(ctx context.Context, t lifecycle.Type, task timers.Task, data map[string]any) {
	if c.opts.Signals == nil {
		return
	}
	if data == nil {
		data = map[string]any{}
	}
	data["node_id"], data["root_pipeline_id"], data["attempt"] = task.NodeID, task.RequestID, int64(task.Attempt)
	c.opts.Signals.Emit(ctx, lifecycle.Signal{Type: t, Data: data, At: time.Now(), RequestID: task.RequestID, NodeID: task.NodeID, Element: task.FullName})
}

// NodeHook is how a node operation on a task (NodeOp) announces
// moment t: it runs the template's hook t (with needRunHook, when exported) with the task's data
// plus extra, writes the hook's row, and emits the signal with extra as its data. It answers
// data as the hook left it (as given for a read-only hook); the hook's failure is in its row.
func (c *Center) NodeHook(ctx context.Context, task timers.Task, t lifecycle.Type, extra map[string]any) map[string]any {
	data := taskData(task)
	for k, v := range extra {
		data[k] = v
	}
	out := data
	if o, row, _, ok := c.callHook(ctx, c.Templates()[task.FullName], task, t, data, true); ok {
		out = o
		c.writeRows(row)
	}
	sig := make(map[string]any, len(extra))
	for k, v := range extra {
		sig[k] = v
	}
	c.signal(ctx, t, task, sig)
	return out
}

func errorData(re *logstore.RowError) map[string]any {
	if re == nil {
		return nil
	}
	return map[string]any{"code": re.Code, "message": re.Message}
}
