package lifecycle

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/registry"
)

// Set is the hooks one element exports, as a bit set over Hooks: the engine and the task center
// ask it on every run, so a node without hooks costs one bit test per moment.
type Set uint32

// HooksOf is the set of hooks an element runs: none without needRunHook, else those of Hooks its
// entry exports (by the registry's static analysis, the same `trellis check` uses).
func HooksOf(needRunHook bool, exports []string) Set {
	if !needRunHook {
		return 0
	}
	var s Set
	for _, name := range exports {
		for i, h := range Hooks {
			if string(h) == name {
				s |= 1 << i
			}
		}
	}
	return s
}

// Has reports whether t is in the set.
func (s Set) Has(t Type) bool {
	if s == 0 {
		return false
	}
	for i, h := range Hooks {
		if h == t {
			return s&(1<<i) != 0
		}
	}
	return false
}

// HookCall is one call of a node's hook: fn(data, parentData) of the node's element.
type HookCall struct {
	Element string
	Hook    Type
	// Data and ParentData are the hook's two arguments (docs/hooks.md gives their fields).
	Data, ParentData map[string]any
	// Timeout bounds the call (0: the executor's default); RequestID and NodeID are the hook's
	// own node, so what the hook sends or creates hangs under it in the call tree.
	Timeout   time.Duration
	RequestID string
	NodeID    string
}

// CallHook runs a hook on ex. It answers data as the hook left it: the changed argument for a
// hook that may change data (ReadOnly false), the original Data otherwise and whenever the call
// failed — a hook that throws or times out changes nothing. The hook's return value (in res) is
// not used by anyone (the seed returns True); err is the call's failure, for its log row.
func CallHook(ctx context.Context, ex jsvm.Executor, c HookCall) (data map[string]any, res jsvm.Result, err error) {
	writable := !ReadOnly(c.Hook)
	res, err = ex.Execute(ctx, jsvm.Call{
		Element: c.Element, Function: string(c.Hook), Args: []any{c.Data, c.ParentData},
		Limits: jsvm.Limits{Timeout: c.Timeout}, RequestID: c.RequestID, NodeID: c.NodeID, ReturnArgs: writable,
	})
	if err != nil || !writable || len(res.Args) == 0 {
		return c.Data, res, err
	}
	if d, ok := res.Args[0].(map[string]any); ok {
		return d, res, nil
	}
	// The hook replaced its own parameter with something else; the caller's object is untouched.
	return c.Data, res, nil
}

// PrefixLogs is a hook's console output as it joins its node's own: each message prefixed with
// "[hook] " so the node's console says which hook printed it.
func PrefixLogs(t Type, logs []jsvm.LogEntry) []jsvm.LogEntry {
	if len(logs) == 0 {
		return nil
	}
	out := make([]jsvm.LogEntry, len(logs))
	for i, l := range logs {
		l.Message = "[" + string(t) + "] " + l.Message
		out[i] = l
	}
	return out
}

// CheckHooks is the `trellis check` warnings about an event or task element's hooks: a hook
// exported without needRunHook (it would never run), placed at the export; needRunHook with no
// hook exported (nothing would run), placed at the field. Both are warnings: the app loads.
func CheckHooks(el *registry.Element) []registry.Problem {
	need, _ := el.Definition["needRunHook"].(bool)
	var exported []string
	for _, name := range el.Exports {
		if IsHook(name) {
			exported = append(exported, name)
		}
	}
	var out []registry.Problem
	switch {
	case !need:
		for _, name := range exported {
			p := el.ExportProblem(name, registry.CodeBadConfig, fmt.Sprintf(
				"%s is exported as a hook but needRunHook is not true, so it is never called: add \"needRunHook\": true to e.json, or rename the function", name))
			p.Severity = registry.SeverityWarning
			out = append(out, p)
		}
	case len(exported) == 0:
		p := el.FieldProblem("needRunHook", registry.CodeBadConfig, fmt.Sprintf(
			"needRunHook is true but the entry exports no hook, so none is called: export one of %s, or remove needRunHook", hookNames()))
		p.Severity = registry.SeverityWarning
		out = append(out, p)
	}
	return out
}

func hookNames() string {
	names := make([]string, len(Hooks))
	for i, h := range Hooks {
		names[i] = string(h)
	}
	return strings.Join(names, ", ")
}
