package host

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/lifecycle"
	"github.com/trellis-run/trellis/host/modelrt"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/requests"
	"github.com/trellis-run/trellis/host/services"
	"github.com/trellis-run/trellis/host/vocab"
)

var _ jsvm.HostCaller = (*Host)(nil)

// CallService runs function fn of the service element fullName with args (positional; one
// object is the function's single argument, or its named arguments for a built-in Go service).
// It is what `trellis call` and POST /api/services/{fullName}/{function} do.
func (h *Host) CallService(ctx context.Context, fullName, fn string, args []any) (jsvm.Result, error) {
	// Refused before anything is sent or logged: the row would keep the arguments.
	if depth := h.cfg.Limits.MaxValueDepth; vocab.DeeperThan(any(args), depth+1) {
		return jsvm.Result{}, vocab.Errorf(vocab.CodeInvalidArgument, "the arguments are nested deeper than %d levels (the nesting cap, --max-depth); flatten them", depth)
	}
	snap := h.Snapshot()
	el := snap.Elements[fullName]
	if el == nil {
		return jsvm.Result{}, fmt.Errorf("%w: no element %q in app %q%s", ErrNotFound, fullName, snap.App.Name, suggest(snap, fullName))
	}
	if el.Layer != registry.LayerInstance || !snap.IsA(fullName, "services.Meta") {
		return jsvm.Result{}, fmt.Errorf("%w: %s is a %s, not a service (an instance of services.NormalType)", ErrNotFound, fullName, el.Type)
	}
	if el.Native {
		start := time.Now()
		v, err := h.catalog.Call(ctx, h, el, fn, args, services.Invocation{})
		return jsvm.Result{Value: v, Duration: time.Since(start)}, err
	}
	// A Type's loader.js builds the runtime object, so what it offers is known only by running
	// it: the sandbox answers not_found for a function the loaded object lacks.
	if loaderOf(snap, el) == "" && !el.HasExport(fn) {
		return jsvm.Result{}, fmt.Errorf("%w: %s has no function %q; it exports: %s", ErrNotFound, fullName, fn, listOrNone(el.Exports))
	}
	exec, err := h.executor()
	if err != nil {
		return jsvm.Result{}, err
	}
	// The call is a node of its own request: events it sends and tasks it creates join that
	// request as its children, so the log shows the call tree from the call down.
	call := jsvm.Call{Element: fullName, Function: fn, Args: args, RequestID: vocab.NewID("req_"), NodeID: vocab.NewID("node_")}
	// The call starts a request, as a sendEvent from outside does: its prepare moments come
	// around the making of its root node, and the root is tracked (before it runs, so the nodes
	// it creates join an unfinished request) for pipeline_finish.
	sig := h.emitter()
	h.prepareSignal(ctx, sig, lifecycle.PrePrepareRunPipeline, call)
	tracker := h.requestTracker(snap, sig)
	if tracker != nil {
		if err := tracker.OpenNodes(ctx, call.RequestID, call.NodeID); err != nil {
			return jsvm.Result{}, vocab.Errorf(vocab.CodeUnavailable, "track the request of the call: %v", err)
		}
	}
	h.prepareSignal(ctx, sig, lifecycle.PostPrepareRunPipeline, call)
	start := time.Now()
	res, err := exec.Execute(ctx, call)
	h.logServiceCall(ctx, call, start, res, err)
	if tracker != nil {
		_ = lifecycle.CloseNode(context.WithoutCancel(ctx), tracker, sig, call.RequestID, call.NodeID)
	}
	return res, err
}

// requestTracker is the tracker of unfinished nodes when the app listens to signals (the only
// time pipeline_finish can be heard), else nil.
func (h *Host) requestTracker(snap *registry.Snapshot, sig lifecycle.Emitter) requests.Tracker {
	b := h.backends.Load()
	if b == nil || b.Requests == nil || sig == nil || snap == nil || !snap.App.Signals.Enabled {
		return nil
	}
	return b.Requests
}

// prepareSignal emits pre/post_prepare_run_pipeline of the request a service call starts, with
// the seed's data: pipeline is the requestId, root_pipeline_data the call.
func (h *Host) prepareSignal(ctx context.Context, sig lifecycle.Emitter, t lifecycle.Type, call jsvm.Call) {
	if sig == nil {
		return
	}
	args := call.Args
	if args == nil {
		args = []any{}
	}
	sig.Emit(ctx, lifecycle.Signal{Type: t, At: time.Now(), RequestID: call.RequestID, Data: map[string]any{
		"pipeline":              call.RequestID,
		"root_pipeline_data":    map[string]any{"service": call.Element, "function": call.Function, "args": args},
		"root_pipeline_context": map[string]any{},
		"subprocess_context":    map[string]any{},
	}})
}

// CallHost serves calls from JavaScript to Go-backed elements (built-in services). Its errors
// carry codes the sandbox gives to the thrown JS Error.
func (h *Host) CallHost(ctx context.Context, call jsvm.HostCall) (any, error) {
	snap := h.Snapshot()
	el := snap.Elements[call.FullName]
	if call.Builtin {
		el = snap.Builtin[call.FullName]
	}
	if el == nil {
		return nil, vocab.Errorf(vocab.CodeNotFound, "no element %q", call.FullName)
	}
	if !call.Builtin && isModel(snap, el) {
		mrt := h.Models()
		if mrt == nil {
			return nil, vocab.Errorf(vocab.CodeUnavailable, "model storage is not running on this host")
		}
		caller, _, _ := strings.Cut(call.Caller, lifecycleSuffix)
		return mrt.Call(ctx, call.FullName, call.Method, call.Args, modelrt.Caller{Element: caller, RequestID: call.RequestID, NodeID: call.NodeID})
	}
	if !el.Native {
		return nil, vocab.Errorf(vocab.CodeNotFound, "%s is not a built-in Go service", call.FullName)
	}
	return h.catalog.Call(ctx, h, el, call.Method, call.Args, services.Invocation{
		Caller: call.Caller, RequestID: call.RequestID, NodeID: call.NodeID,
	})
}

// suggest names elements whose fullName is close to a mistyped one.
func suggest(snap *registry.Snapshot, fullName string) string {
	var near []string
	last := fullName[strings.LastIndex(fullName, ".")+1:]
	for name := range snap.Elements {
		if strings.EqualFold(name, fullName) || (last != "" && strings.HasSuffix(strings.ToLower(name), "."+strings.ToLower(last))) {
			near = append(near, name)
		}
	}
	if len(near) == 0 {
		return ""
	}
	sort.Strings(near)
	return "; did you mean " + strings.Join(near, " or ") + "?"
}

func listOrNone(list []string) string {
	if len(list) == 0 {
		return "(nothing)"
	}
	sorted := append([]string(nil), list...)
	sort.Strings(sorted)
	return strings.Join(sorted, ", ")
}
