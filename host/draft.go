package host

// Test runs of drafts and replays (docs/reference.md §6.7): a draft element runs on a sandbox of
// its own, loaded with the app as it would be with the draft applied, so the running app's
// versions never see it; nothing is written to the app directory or the execution log.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/trellis-run/trellis/host/appdir"
	"github.com/trellis-run/trellis/host/isolate"
	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

// RunDraft runs function fn of the draft of fullName (definition: its e.json text; files: its
// other files) without saving it. args is an array of positional arguments, or an object: the
// kwargs of a sample event for a listener (its handler gets the event object), the argDict of
// a task function, the one argument of a service function; nil is no arguments (a task
// function gets {}). A draft with problems is a *registry.ValidationError
// listing every one; a run that fails is not an error: it answers {result, logs, error,
// durationMs} with the error's code, message and JS stack (at the draft's file:line).
func (h *Host) RunDraft(ctx context.Context, fullName, definition string, files map[string]string, fn string, args any) (map[string]any, error) {
	snap, el, err := h.draftSnapshot(fullName, appdir.Draft{Definition: definition, Files: files})
	if err != nil {
		return nil, err
	}
	if fn == "" {
		return nil, fmt.Errorf("%w: function is required: the name of a function %s exports (%s)", appdir.ErrBadDraft, fullName, listOrNone(el.Exports))
	}
	call := jsvm.Call{Element: fullName, Function: fn, RequestID: vocab.NewID("req_"), NodeID: vocab.NewID("node_")}
	if isModel(snap, el) {
		// A model's runtime object is the host's CRUD proxy; its own code (lifecycle functions)
		// runs under a name of its own (source.go).
		call.Element = fullName + lifecycleSuffix
	}
	listener, task := snap.IsA(fullName, "events.Meta"), snap.IsA(fullName, "tasks.Meta")
	if listener || task {
		// Handlers and task functions get their ctx object after their arguments, as when the
		// engine or the task center runs them.
		call.Ctx = &jsvm.HandlerContext{Attempt: 1}
	}
	switch a := args.(type) {
	case []any:
		call.Args = a
	case map[string]any:
		call.Args = []any{a}
		if listener {
			now := time.Now()
			call.Args = []any{map[string]any{"id": vocab.NewID("evt_"), "sender": defString(el.Definition, "sender", "draft"),
				"eventType": el.Type, "kwargs": a, "requestId": call.RequestID, "nodeId": call.NodeID, "attempt": int64(1), "sentAt": now}}
		}
	case nil:
		if task {
			call.Args = []any{map[string]any{}}
		}
	default:
		return nil, fmt.Errorf("%w: args must be an array of arguments or an object (kwargs of a sample event, a task's argDict), got %s", appdir.ErrBadDraft, vocab.Describe(args))
	}
	return h.runOnDraft(ctx, snap, call)
}

// ReplayNode runs the draft of the element of a logged node on that node's input, as its latest
// logged state records it: a listener gets the event object, a task function its argDict, a
// service function its arguments. It answers {logged: {result, error}, draft: {result, logs,
// error, durationMs}} and writes nothing to the log.
func (h *Host) ReplayNode(ctx context.Context, nodeID, definition string, files map[string]string) (map[string]any, error) {
	store := h.LogStore()
	if store == nil {
		return nil, vocab.Errorf(vocab.CodeUnavailable, "the execution log is not running on this host")
	}
	rows, err := store.Attempts(ctx, nodeID)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: no node %q in the execution log", ErrNotFound, nodeID)
	}
	last := rows[len(rows)-1]
	snap, el, err := h.draftSnapshot(last.FullName, appdir.Draft{Definition: definition, Files: files})
	if err != nil {
		return nil, err
	}
	input, err := vocab.DecodeJSON(orNull(last.Kwargs))
	if err != nil {
		return nil, fmt.Errorf("host: node %s has unreadable kwargs: %w", nodeID, err)
	}
	call := jsvm.Call{Element: last.FullName}
	switch last.Kind {
	case logstore.KindEvent:
		call.Function = defString(el.Definition, "handler", "handle")
		call.Args = []any{map[string]any{
			"id": last.EventID, "sender": last.Sender, "eventType": last.EventType, "kwargs": input,
			"requestId": last.RequestID, "nodeId": last.NodeID, "attempt": int64(last.Attempt), "sentAt": last.CreatedAt,
		}}
		call.Ctx = &jsvm.HandlerContext{Attempt: last.Attempt}
	case logstore.KindTask:
		fn := defString(el.Definition, "funcName", "")
		if i := strings.LastIndexByte(fn, '.'); i >= 0 {
			// funcName may name another element's function: the draft (the template) then
			// decides only which one.
			call.Element, fn = fn[:i], fn[i+1:]
		}
		if input == nil {
			input = map[string]any{}
		}
		call.Function, call.Args = fn, []any{input}
		call.Ctx = &jsvm.HandlerContext{Attempt: last.Attempt, Extra: map[string]any{"taskId": last.NodeID}}
	case logstore.KindService:
		call.Function = last.Sender[strings.LastIndexByte(last.Sender, '.')+1:]
		list, _ := input.([]any)
		call.Args = list
	default:
		return nil, vocab.Errorf(vocab.CodeConflict, "node %s is a %s node: only event, task and service nodes can be replayed", nodeID, last.Kind)
	}
	draft, err := h.runOnDraft(ctx, snap, call)
	if err != nil {
		return nil, err
	}
	logged := map[string]any{"status": last.Status, "result": rawOrNil(last.Result), "error": nil}
	if last.Error != nil {
		logged["error"] = last.Error
	}
	return map[string]any{"nodeId": nodeID, "fullName": last.FullName, "kind": last.Kind, "function": call.Function,
		"logged": logged, "draft": draft}, nil
}

// CheckDraft validates the app with the draft of fullName applied, as a save does (the same
// checks as `trellis check`, on a temporary copy), without writing or running anything. It
// answers every problem found, an empty list when there is none; a draft refused before
// validation (a hostile file name, e.json among the files, a fullName that cannot be a
// directory) is an appdir.ErrBadDraft error. The element need not exist, nor be an instance.
func (h *Host) CheckDraft(ctx context.Context, fullName, definition string, files map[string]string) ([]registry.Problem, error) {
	if err := ctx.Err(); err != nil {
		// The editor moved on (a newer check replaces this one): no copy of the app is made.
		return nil, vocab.Errorf(vocab.CodeCanceled, "the check was canceled: %v", err)
	}
	_, err := h.appDir().Overlay(fullName, appdir.Draft{Definition: definition, Files: files})
	var ve *registry.ValidationError
	switch {
	case errors.As(err, &ve):
		return ve.Problems, nil
	case err != nil:
		return nil, err
	}
	return []registry.Problem{}, nil
}

// draftSnapshot validates the app with the draft applied and returns it with the draft element,
// which must be an instance (only instances run).
func (h *Host) draftSnapshot(fullName string, d appdir.Draft) (*registry.Snapshot, *registry.Element, error) {
	snap, err := h.appDir().Overlay(fullName, d)
	if err != nil {
		return nil, nil, err
	}
	el := snap.Elements[fullName]
	if el == nil || el.Layer != registry.LayerInstance {
		return nil, nil, fmt.Errorf("%w: %s is not an instance: only instances (services, listeners, task templates, models) run", appdir.ErrBadDraft, fullName)
	}
	return snap, el, nil
}

// runOnDraft runs one call on a short-lived sandbox of the kind the host runs (an isolated
// worker unless the host runs in-process), with the host's limits, loaded with snap. Calls from
// the draft to built-in services and models reach this host: their effects are real.
func (h *Host) runOnDraft(ctx context.Context, snap *registry.Snapshot, call jsvm.Call) (map[string]any, error) {
	var exec jsvm.Executor
	var err error
	if h.cfg.Sandbox == SandboxInProcess {
		exec, err = jsvm.New(jsvm.Options{Host: h, Limits: h.cfg.Limits})
	} else {
		opts := isolate.Options{Host: h, Workers: 1, Spares: -1, Limits: h.cfg.Limits, Command: h.cfg.WorkerCommand}
		if tz := snap.App.Timezone; tz != "" {
			opts.Env = append(opts.Env, "TZ="+tz)
		}
		exec, err = isolate.New(opts)
	}
	if err != nil {
		return nil, err
	}
	defer exec.Close()
	if err := exec.Load(SourceOf(snap)); err != nil {
		return nil, fmt.Errorf("host: load the draft: %w", err)
	}
	if call.RequestID == "" {
		call.RequestID, call.NodeID = vocab.NewID("req_"), vocab.NewID("node_")
	}
	start := time.Now()
	res, runErr := exec.Execute(ctx, call)
	out := map[string]any{"result": res.Value, "logs": res.Logs, "error": nil, "durationMs": time.Since(start).Milliseconds()}
	if res.Logs == nil {
		out["logs"] = []jsvm.LogEntry{}
	}
	switch {
	case runErr != nil:
		out["error"] = errorBody(runErr)
	case res.Failed != nil:
		out["error"] = map[string]any{"code": vocab.CodeFailed, "message": *res.Failed}
	}
	return out, nil
}

// errorBody is an error as the HTTP API shows one: {code, message, details?}.
func errorBody(err error) map[string]any {
	code := vocab.CodeOf(err)
	if code == "" {
		code = vocab.CodeInternal
	}
	body := map[string]any{"code": code, "message": err.Error()}
	var d interface{ ErrorDetails() any }
	if errors.As(err, &d) {
		body["details"] = d.ErrorDetails()
		if m, ok := d.(interface{ ErrorMessage() string }); ok {
			body["message"] = m.ErrorMessage()
		}
	}
	return body
}

func defString(def map[string]any, key, fallback string) string {
	if s, _ := def[key].(string); s != "" {
		return s
	}
	return fallback
}

func orNull(b json.RawMessage) []byte {
	if len(b) == 0 {
		return []byte("null")
	}
	return b
}

func rawOrNil(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	v, err := vocab.DecodeJSON(b)
	if err != nil {
		return nil
	}
	return v
}
