package registry

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBuiltinsLoadCleanly(t *testing.T) {
	t.Parallel()
	s := mustLoad(t, opts(newApp(t, nil)))
	want := map[string]Layer{
		"events.Meta": LayerMeta, "events.NormalType": LayerType, "events.ModelType": LayerType,
		"events.services.EventSvc": LayerInstance, "services.Meta": LayerMeta, "services.NormalType": LayerType,
		"services.TaskSvc": LayerInstance, "tasks.Meta": LayerMeta, "tasks.NormalType": LayerType,
		"models.Meta": LayerMeta, "models.NormalType": LayerType, "signals.Meta": LayerMeta, "signals.NormalType": LayerType,
	}
	require.Len(t, s.Elements, len(want))
	require.Len(t, s.Builtin, len(want))
	for name, layer := range want {
		e := s.Elements[name]
		require.NotNil(t, e, name)
		require.Equal(t, layer, e.Layer, name)
		require.Equal(t, OriginBuiltin, e.Origin, name)
		require.Empty(t, e.AppDir, name)
		require.Contains(t, e.Files, "e.json", name)
		require.Same(t, s.Builtin[name], e, "%s: not overridden, so the resolved element is the built-in one", name)
	}
	require.Equal(t, "services.Meta", s.Elements["events.services.EventSvc"].Meta)
	require.True(t, s.Elements["events.services.EventSvc"].Native)
	require.True(t, s.Elements["services.TaskSvc"].Native)
	require.Equal(t, "events/services/EventSvc", s.Elements["events.services.EventSvc"].Dir)
	names := make([]string, 0)
	for _, e := range s.Sorted() {
		names = append(names, e.FullName)
	}
	require.IsIncreasing(t, names)
}

// The host binds named-object arguments from functionList, so names, order and defaults must
// match docs/reference.md §2 exactly.
func TestBuiltinFunctionLists(t *testing.T) {
	t.Parallel()
	s := mustLoad(t, opts(newApp(t, nil)))
	type arg struct {
		name, typ string
		def       any
		hasDef    bool
		required  bool
	}
	req := func(n, t string) arg { return arg{name: n, typ: t, required: true} }
	def := func(n, t string, d any) arg { return arg{name: n, typ: t, def: d, hasDef: true} }
	want := map[string][]struct {
		fn   string
		args []arg
	}{
		"events.services.EventSvc": {
			{"getEventLog", []arg{req("fullName", "Stext"), def("startTime", "Datetime", nil), def("endTime", "Datetime", nil),
				def("status", "Stext", nil), def("page", "Numeric", float64(1)), def("pageSize", "Numeric", float64(20)), def("stage", "Stext", nil)}},
			{"sendEvent", []arg{req("sender", "Stext"), req("kwargs", "JitDict"), def("eventType", "Stext", "events.NormalType")}},
			{"getEventLogByRequestId", []arg{req("requestId", "Stext")}},
			{"getEventLogByNodeId", []arg{req("requestId", "Stext"), req("nodeId", "Stext")}},
			{"resend", []arg{req("nodeId", "Stext")}},
			{"pause", []arg{req("nodeId", "Stext")}},
			{"resume", []arg{req("nodeId", "Stext")}},
			{"retry", []arg{req("nodeId", "Stext"), def("data", "JitDict", nil)}},
			{"skip", []arg{req("nodeId", "Stext")}},
			{"forcedFail", []arg{req("nodeId", "Stext"), def("data", "Stext", nil)}},
			{"pauseRequest", []arg{req("requestId", "Stext")}},
			{"resumeRequest", []arg{req("requestId", "Stext")}},
			{"revokeRequest", []arg{req("requestId", "Stext")}},
		},
		"services.TaskSvc": {
			{"getTaskTmplList", []arg{req("queryStr", "Stext")}},
			{"createTimerTask", []arg{req("fullName", "Stext"), req("startTime", "Datetime"), req("funcName", "Stext"),
				req("taskType", "Stext"), req("argDict", "JitDict")}},
			{"forcedEnd", []arg{req("taskId", "Stext")}},
			{"saveDateFieldTask", []arg{req("rowObj", "RowData")}},
			{"deleteDateFieldTask", []arg{req("rowObj", "RowData")}},
			{"getTask", []arg{req("taskId", "Stext")}},
		},
	}
	for svc, fns := range want {
		list := s.Elements[svc].Definition["functionList"].([]any)
		require.Len(t, list, len(fns), svc)
		for i, fn := range fns {
			got := list[i].(map[string]any)
			require.Equal(t, fn.fn, got["name"], "%s #%d", svc, i)
			args := got["args"].([]any)
			require.Len(t, args, len(fn.args), "%s.%s", svc, fn.fn)
			for j, a := range fn.args {
				ga := args[j].(map[string]any)
				require.Equal(t, a.name, ga["name"], "%s.%s arg %d", svc, fn.fn, j)
				require.Equal(t, a.typ, ga["type"], "%s.%s(%s)", svc, fn.fn, a.name)
				d, has := ga["default"]
				require.Equal(t, a.hasDef, has, "%s.%s(%s) default", svc, fn.fn, a.name)
				require.Equal(t, a.def, d, "%s.%s(%s) default", svc, fn.fn, a.name)
				r, _ := ga["required"].(bool)
				require.Equal(t, a.required, r, "%s.%s(%s) required", svc, fn.fn, a.name)
			}
		}
		names := make([]string, len(fns))
		for i, fn := range fns {
			names[i] = fn.fn
		}
		require.Equal(t, names, s.Elements[svc].Functions())
	}
}

// An instance's Definition is schema defaults ← Type values ← its own, nested defaults filled.
func TestDefinitionDefaults(t *testing.T) {
	t.Parallel()
	s := mustLoad(t, opts(newApp(t, map[string]string{
		"events/OnLogin/e.json":   `{"type": "events.NormalType", "sender": "models.UserModel", "retry": {"policy": "cyclic", "window": "1h"}}`,
		"events/OnLogin/index.js": eventJS,
		"tasks/Nightly/e.json":    `{"type": "tasks.NormalType", "repeatType": "cron", "cron": "0 3 * * *", "funcName": "run"}`,
		"tasks/Nightly/index.js":  "exports.run = function (args, ctx) {}\n",
		"signals/Audit/e.json":    `{"type": "signals.NormalType"}`,
		"signals/Audit/index.js":  "exports.receive = function (t, d) {}\n",
	})))
	d := s.Elements["events.OnLogin"].Definition
	require.Equal(t, "handle", d["handler"])
	require.Equal(t, "pool", d["handlerType"])
	require.Equal(t, "instance", d["broadcastIdentifier"])
	require.Equal(t, true, d["reliableDelivery"])
	require.Equal(t, false, d["requeueOnError"])
	require.Equal(t, "30s", d["timeout"])
	require.Equal(t, true, d["enabled"])
	require.Equal(t, map[string]any{"policy": "cyclic", "window": "1h", "interval": "5m", "maxAttempts": float64(5)}, d["retry"])
	require.NotContains(t, d, "webhook", "no default for webhook: absent means JavaScript")
	require.Equal(t, "events.NormalType", d["type"])
	td := s.Elements["tasks.Nightly"].Definition
	require.Equal(t, "fireOnce", td["misfire"])
	require.Equal(t, "serial", td["concurrency"])
	require.Equal(t, map[string]any{}, td["argDict"])
	require.Equal(t, "none", td["retry"].(map[string]any)["policy"])
	require.Equal(t, "receive", s.Elements["signals.Audit"].Definition["handler"])
	require.Equal(t, []string{"handle"}, s.Elements["events.OnLogin"].Exports)
	require.Equal(t, []*Element{s.Elements["events.OnLogin"], s.Elements["events.NormalType"], s.Elements["events.Meta"]}, s.Chain("events.OnLogin"))
	require.True(t, s.IsA("events.OnLogin", "events.Meta"))
	require.True(t, s.IsA("events.OnLogin", "events.NormalType"))
	require.False(t, s.IsA("events.OnLogin", "events.ModelType"))
	require.False(t, s.IsA("nope", "events.Meta"))
	require.Nil(t, s.Chain("nope"))
}

// A service may set its own timeout (docs/reference.md §2: an element field overriding --timeout), with
// the same duration checks as listeners and tasks; without one it gets no default, so the
// host's --timeout applies.
func TestServiceTimeout(t *testing.T) {
	t.Parallel()
	s := mustLoad(t, opts(newApp(t, map[string]string{
		"services/Slow/e.json":   `{"type": "services.NormalType", "timeout": "5s"}`,
		"services/Slow/index.js": serviceJS,
		"services/Any/e.json":    serviceJSON,
		"services/Any/index.js":  serviceJS,
	})))
	require.Equal(t, "5s", s.Elements["services.Slow"].Definition["timeout"])
	require.NotContains(t, s.Elements["services.Any"].Definition, "timeout", "no default: --timeout decides")

	for value, code := range map[string]string{`"soon"`: CodeBadDuration, `"-5s"`: CodeBadDuration, `5`: CodeWrongType} {
		ps := Check(opts(newApp(t, map[string]string{
			"services/Slow/e.json":   "{\"type\": \"services.NormalType\",\n \"timeout\": " + value + "}",
			"services/Slow/index.js": serviceJS,
		})))
		require.Len(t, ps, 1, "%s: %v", value, ps)
		require.Equal(t, "services/Slow/e.json:2:13: "+code, where(ps[0]), value)
	}
}
