package host

import (
	"context"
	"errors"
	"fmt"

	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/modelrt"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/vocab"
)

// lifecycleSuffix names the sandbox element that holds a model's own index.js: the model's
// runtime object is the Go-backed CRUD proxy, so its lifecycle functions run under this name.
const lifecycleSuffix = "@lifecycle"

// isModel reports whether el is a model instance (its runtime object is the CRUD proxy).
func isModel(s *registry.Snapshot, el *registry.Element) bool {
	return el.Layer == registry.LayerInstance && s.IsA(el.FullName, "models.Meta")
}

// modelsPart is model storage on the backends' model store: every model's table is brought up to
// date as it starts and on every reload.
func (h *Host) modelsPart() part {
	return part{name: "model storage",
		start: func(ctx context.Context) error {
			rt, err := modelrt.New(modelrt.Options{
				Store: h.backends.Load().Models, Snapshot: h.Snapshot, Location: h.Location,
				Lifecycle: h.modelLifecycle, Emit: h.emitModelEvent, DateFields: h.syncDateFields,
			})
			if err == nil {
				err = rt.Ensure(ctx, h.Snapshot())
			}
			if err != nil {
				return err
			}
			h.models.Store(rt)
			return nil
		},
		stop: func(context.Context) error {
			h.models.Store(nil)
			return nil
		}}
}

func (h *Host) modelLifecycle(ctx context.Context, model, fn string, args []any, c modelrt.Caller) (any, bool, error) {
	el := h.Snapshot().Elements[model]
	if el == nil || !el.HasExport(fn) {
		return nil, false, nil
	}
	exec, err := h.executor()
	if err != nil {
		return nil, true, err
	}
	res, err := exec.Execute(ctx, jsvm.Call{Element: model + lifecycleSuffix, Function: fn, Args: args, RequestID: c.RequestID, NodeID: c.NodeID})
	if err != nil {
		return nil, true, err
	}
	if res.Failed != nil {
		return nil, true, &jsvm.Error{Code: vocab.CodeJSError, Element: model, Message: fmt.Sprintf("%s failed: %s", fn, *res.Failed)}
	}
	return res.Value, true, nil
}

// emitModelEvent sends a model write to events.ModelType listeners, as a child of the call.
func (h *Host) emitModelEvent(ctx context.Context, ev modelrt.Event) error {
	kwargs := map[string]any{"operate": ev.Operate, "postData": nilIfEmpty(ev.PostData), "prevData": nilIfEmpty(ev.PrevData)}
	_, err := h.SendEvent(ctx, engine.SendRequest{Sender: ev.Model, EventType: engine.ModelEventType, Kwargs: kwargs,
		RequestID: ev.Caller.RequestID, ParentNodeID: ev.Caller.NodeID, Operate: ev.Operate, Changed: ev.Changed})
	return err
}

func nilIfEmpty(m map[string]any) any {
	if m == nil {
		return nil
	}
	return m
}

func (h *Host) syncDateFields(ctx context.Context, model string, prev, post map[string]any) error {
	tc := h.Tasks()
	if tc == nil {
		return errors.New("host: the task center is not running, so date-field tasks were not updated")
	}
	_, _, err := tc.SyncDateFields(ctx, model, prev, post, false)
	return err
}

// Models is the model runtime; nil before Start and after Stop.
func (h *Host) Models() *modelrt.Runtime { return h.models.Load() }
