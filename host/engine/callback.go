package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/host/lifecycle"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

// ErrConflict: an operation the node's current state does not allow (a callback for a node
// that is not waiting for one).
var ErrConflict = vocab.Sentinel(vocab.CodeConflict, "engine: not allowed in the node's current state")

func callbackTopic(l *Listener) string { return "callback:" + l.Topic() }

// awaitCallback records, durably on the bus, when a node waiting for its callback fails: the
// host holding that record fails the node at the deadline unless the callback came first.
func (e *Engine) awaitCallback(ctx context.Context, l *Listener, env *envelope, now time.Time) error {
	deadline := *env
	deadline.NotBefore = now.Add(l.Timeout)
	payload, _ := json.Marshal(&deadline)
	_, err := e.opts.Bus.Publish(ctx, callbackTopic(l), &bus.Message{Payload: payload})
	return err
}

// watchCallbacks fails nodes whose callback did not come before their deadline.
func (e *Engine) watchCallbacks(l *Listener) deliveryFunc {
	return e.holdUntilDue(func(env *envelope) error {
		last, err := e.latestState(e.ctx, env.NodeID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if err == nil && last.Stage == logstore.StageAwaitingCallback && last.Attempt == env.Attempt {
			r := e.row(env, logstore.StatusFail, logstore.StageCallbackTimeout, time.Now())
			r.Error = &logstore.RowError{Code: vocab.CodeTimeout, Message: fmt.Sprintf("no callback for node %s within %s", env.NodeID, l.Timeout)}
			e.writeRows(e.ctx, r)
			e.closeNode(e.ctx, env.RequestID, env.NodeID)
		}
		return nil
	})
}

// latestState is the node's most recent log row.
func (e *Engine) latestState(ctx context.Context, nodeID string) (logstore.Row, error) {
	// Rows of this host may still sit in the spool; the store must see them.
	_ = e.opts.Log.Flush(ctx)
	rows, err := e.opts.Store.Attempts(ctx, nodeID)
	if err != nil {
		return logstore.Row{}, err
	}
	if len(rows) == 0 {
		return logstore.Row{}, fmt.Errorf("%w: no node %q", ErrNotFound, nodeID)
	}
	return rows[len(rows)-1], nil
}

// CallbackResult is what a callback did.
type CallbackResult struct {
	NodeID string `json:"nodeId"`
	Status string `json:"status"`
}

// Callback completes a node that waits for one (ctx.waitCallback() or an async webhook): data
// {"error": "..."} fails it, anything else is its result.
func (e *Engine) Callback(ctx context.Context, nodeID string, data any) (CallbackResult, error) {
	last, err := e.latestState(ctx, nodeID)
	if err != nil {
		return CallbackResult{}, err
	}
	if last.Status != logstore.StatusRunning || last.Stage != logstore.StageAwaitingCallback {
		return CallbackResult{}, fmt.Errorf("%w: node %s is %s/%s, not waiting for a callback", ErrConflict, nodeID, last.Status, last.Stage)
	}
	// pre_callback and post_callback (read-only) run around the callback; a successful one
	// ends the node, so node_finish runs between them and may change the result it saves.
	l := e.listenerNamed(e.opts.Snapshot(), last.FullName)
	env := envelopeOf(last)
	e.nodeMoment(ctx, l, env, lifecycle.PreCallback, map[string]any{"callbackData": data}, map[string]any{"data": data})
	now := time.Now()
	r := e.opts.Log.Next(last, logstore.StatusSuccess, logstore.StageCallback, now)
	r.EndTime, r.Logs = now, last.Logs
	if !last.StartTime.IsZero() {
		r.Duration = now.Sub(last.StartTime).Milliseconds()
	}
	if m, ok := data.(map[string]any); ok {
		if msg, ok := m["error"]; ok && msg != nil {
			r.Status, r.Stage = logstore.StatusFail, logstore.StageCallbackFailed
			r.Error = &logstore.RowError{Code: "callback", Message: callbackError(msg)}
		}
	}
	rows := []logstore.Row{}
	if r.Status == logstore.StatusSuccess {
		result := data
		if l != nil && l.Hooks.Has(lifecycle.NodeFinish) {
			d := nodeData(env, decoded(env.Kwargs))
			d["result"] = data
			out, hr, _ := e.callHook(ctx, l, env, lifecycle.NodeFinish, d)
			result, rows = out["result"], append(rows, hr)
		}
		r.Result, _ = vocab.EncodeJSON(result)
	}
	if err := e.opts.Log.WriteErr(ctx, append(rows, r)...); err != nil {
		return CallbackResult{}, fmt.Errorf("engine: record the callback of %s: %w", nodeID, err)
	}
	if r.Status == logstore.StatusSuccess {
		e.signal(ctx, lifecycle.NodeFinish, env, nil)
	}
	e.nodeMoment(ctx, l, env, lifecycle.PostCallback, map[string]any{"callbackData": data, "status": r.Status}, map[string]any{"data": data})
	e.closeNode(ctx, env.RequestID, env.NodeID)
	return CallbackResult{NodeID: nodeID, Status: r.Status}, nil
}

// callbackError is the message of a callback's {"error": …}: a string as given, anything else
// (an object such as {code, message}) as its JSON, never Go's formatting of a map.
func callbackError(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
