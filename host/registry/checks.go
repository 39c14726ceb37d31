package registry

import (
	"fmt"
	"strings"
	"time"
)

// The built-in Metas whose instances get semantic checks. Checks follow the chain, so they
// apply to instances of user Types of these Metas too.
const (
	MetaEvents   = "events.Meta"
	MetaServices = "services.Meta"
	MetaTasks    = "tasks.Meta"
	MetaModels   = "models.Meta"
	MetaSignals  = "signals.Meta"
)

// at reports a problem about a value of e's definition (see FieldProblem).
func (ev *evaluation) at(e *Element, path, code, msg string) {
	ev.add(e.src.key, e.FieldProblem(path, code, msg))
}

// FieldProblem is a problem about the value at path in e's definition ("cron",
// "retry/interval", "functionList/0/name": keys and array indexes joined by "/"), placed the way
// the registry places its own: at that value in e's own e.json when it is written there, else on
// the e.json as a whole (the value came from its Type or a default). Validators use it so that
// their problems point where the user must edit.
func (e *Element) FieldProblem(path, code, message string) Problem {
	p := Problem{Element: e.FullName, Code: code, Message: message}
	if s := e.src; s != nil {
		p.File = s.file(elementFile)
		if s.doc != nil {
			if _, own := s.doc.vals[path]; own {
				p.Line, p.Column = s.doc.valuePos(path)
			}
		}
	}
	return p
}

// ExportProblem is a problem about function name as e's entry file exports it, placed at the
// first place that file names it (exports.name = …, name: …, function name…), else on the file
// as a whole. Validators use it for what is wrong with an export rather than with e.json.
func (e *Element) ExportProblem(name, code, message string) Problem {
	p := Problem{Element: e.FullName, Code: code, Message: message}
	s := e.src
	if s == nil || e.Entry == "" {
		return p
	}
	p.File = s.file(e.Entry)
	if info := s.js[e.Entry]; info != nil {
		if off := wordIndex(info.src, name); off >= 0 {
			p.Line, p.Column = lineColOf(info.src, info.lines, off)
		}
	}
	return p
}

// wordIndex is the offset of the first occurrence of name in src that is a whole identifier, or -1.
func wordIndex(src, name string) int {
	isWord := func(b byte) bool {
		return b == '_' || b == '$' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
	}
	for from := 0; from < len(src); {
		i := strings.Index(src[from:], name)
		if i < 0 {
			return -1
		}
		i += from
		end := i + len(name)
		if (i == 0 || !isWord(src[i-1])) && (end == len(src) || !isWord(src[end])) {
			return i
		}
		from = i + 1
	}
	return -1
}

func (ev *evaluation) builtinChecks(snap *Snapshot, e *Element) {
	switch {
	case snap.IsA(e.FullName, MetaEvents):
		ev.checkEvent(snap, e)
	case snap.IsA(e.FullName, MetaTasks):
		ev.checkTask(snap, e)
	case snap.IsA(e.FullName, MetaServices):
		ev.checkService(e)
	case snap.IsA(e.FullName, MetaModels):
		ev.checkModel(e)
	case snap.IsA(e.FullName, MetaSignals):
		ev.checkHandler(e, "handler", "receive", "(eventType, data)")
	}
}

// checkHandler checks that the function named by the field (or its default) is exported.
func (ev *evaluation) checkHandler(e *Element, key, def, params string) {
	if e.Native {
		return
	}
	name, _ := e.Definition[key].(string)
	if name == "" {
		name = def
	}
	entry := e.src.file(e.Entry)
	if _, ok := e.Files[e.Entry]; !ok {
		ev.at(e, key, CodeMissingFunction, fmt.Sprintf("%s %q needs code: add %s with exports.%s = function %s {...}", key, name, entry, name, params))
		return
	}
	if js := e.src.js[e.Entry]; js != nil && len(js.syntax) > 0 {
		return // the syntax error is reported; exports are unknown
	}
	if !e.HasExport(name) {
		ev.at(e, key, CodeMissingFunction, fmt.Sprintf("%s %q is not exported by %s: add exports.%s = function %s {...}%s", key, name, entry, name, params, exportsHint(e.Exports)))
	}
}

func exportsHint(exports []string) string {
	if len(exports) == 0 {
		return " (it exports no functions)"
	}
	return " (it exports: " + strings.Join(exports, ", ") + ")"
}

func (ev *evaluation) checkEvent(snap *Snapshot, e *Element) {
	d := e.Definition
	if hook, ok := d["webhook"].(map[string]any); ok {
		if u, ok := hook["url"].(string); ok && !isWebURL(u) {
			ev.at(e, "webhook/url", CodeBadValue, fmt.Sprintf("webhook url %q must be an absolute http:// or https:// URL", u))
		}
	} else {
		ev.checkHandler(e, "handler", "handle", "(event, ctx)")
	}
	if d["handlerType"] == "broadcast" && d["reliableDelivery"] == true && d["broadcastIdentifier"] == "instance" {
		ev.at(e, "handlerType", CodeBadConfig, "a reliable broadcast listener needs an identifier that survives restarts, "+
			"and \"instance\" changes with every start: set \"broadcastIdentifier\": \"host\" or \"env:NAME\", or \"reliableDelivery\": false")
	}
	ev.checkRetry(e)
	if model, ok := d["model"].(string); ok {
		if m := snap.Elements[model]; m != nil && snap.IsA(model, MetaModels) {
			names := modelFields(m)
			fields, _ := d["fields"].([]any)
			for i, f := range fields {
				if s, ok := f.(string); ok && names[s] == "" {
					ev.at(e, ptrIndex("fields", i), CodeBadField, fmt.Sprintf("model %s has no field %q%s", model, s, suggest(s, sortedKeys(names))))
				}
			}
		}
	}
}

// checkRetry checks what each retry policy needs beyond the field types.
func (ev *evaluation) checkRetry(e *Element) {
	r, ok := e.Definition["retry"].(map[string]any)
	if !ok {
		return
	}
	policy, _ := r["policy"].(string)
	interval, ok := durationOK(r["interval"])
	switch policy {
	case "default", "cyclic", "exponential":
		if ok && interval <= 0 {
			ev.at(e, "retry/interval", CodeBadValue, fmt.Sprintf("retry policy %q needs an interval above zero, such as \"1m\"", policy))
		}
	}
	switch policy {
	case "cyclic":
		if w, ok := durationOK(r["window"]); !ok && r["window"] == nil || ok && w <= 0 {
			ev.at(e, "retry", CodeMissingField, "retry policy \"cyclic\" needs a \"window\": how long to keep retrying, such as \"1h\"")
		}
	case "exponential":
		if maxI := durationOf(r["maxInterval"]); r["maxInterval"] != nil && maxI < interval {
			ev.at(e, "retry/maxInterval", CodeBadValue, "retry maxInterval must be at least interval")
		}
	}
}

func durationOf(v any) time.Duration {
	d, _ := durationOK(v)
	return d
}

// durationOK parses a duration value; ok is false when it is absent or malformed (the schema
// check has reported that already).
func durationOK(v any) (time.Duration, bool) {
	s, _ := v.(string)
	d, err := time.ParseDuration(s)
	return d, err == nil
}

// modelFields maps a model's field names to their types.
func modelFields(m *Element) map[string]string {
	out := map[string]string{}
	fields, _ := m.Definition["fields"].([]any)
	for _, f := range fields {
		if fm, ok := f.(map[string]any); ok {
			n, _ := fm["name"].(string)
			t, _ := fm["type"].(string)
			if n != "" {
				out[n] = t
			}
		}
	}
	return out
}

func (ev *evaluation) checkTask(snap *Snapshot, e *Element) {
	d := e.Definition
	rt, _ := d["repeatType"].(string)
	need := func(key, example string) {
		if _, ok := d[key]; !ok {
			ev.at(e, "repeatType", CodeMissingField, fmt.Sprintf("repeatType %q needs %q, such as %s", rt, key, example))
		}
	}
	switch rt {
	case "cron":
		need("cron", "\"0 3 * * *\"")
	case "interval":
		// What intervals (and cron expressions) the scheduler runs is its own rule, checked by
		// the host's Validator for tasks.Meta.
		need("interval", "\"10m\"")
	case "dateField":
		need("dateField", "{\"model\": \"models.OrderModel\", \"field\": \"dueDate\", \"offset\": \"-1h\"}")
	}
	ev.checkRetry(e)
	if fn, ok := d["funcName"].(string); ok {
		ev.checkFuncName(snap, e, fn)
	} else if rt == "cron" || rt == "interval" || rt == "dateField" {
		ev.at(e, "funcName", CodeMissingField, fmt.Sprintf("a %s task needs \"funcName\": \"services.X.fn\" or the name of a function its %s exports", rt, e.Entry))
	}
	if df, ok := d["dateField"].(map[string]any); ok {
		model, _ := df["model"].(string)
		field, _ := df["field"].(string)
		if m := snap.Elements[model]; m != nil && snap.IsA(model, MetaModels) && field != "" {
			fields := modelFields(m)
			switch t, ok := fields[field]; {
			case !ok:
				ev.at(e, "dateField/field", CodeBadField, fmt.Sprintf("model %s has no field %q%s", model, field, suggest(field, sortedKeys(fields))))
			case t != "Date" && t != "Datetime":
				ev.at(e, "dateField/field", CodeBadField, fmt.Sprintf("field %q of %s is %s; a date-field task needs a Date or Datetime field", field, model, t))
			}
		}
	}
}

// checkFuncName checks a task's funcName: "services.X.fn" must name an existing service that
// offers fn; a plain name must be exported by the task's own entry.
func (ev *evaluation) checkFuncName(snap *Snapshot, e *Element, fn string) {
	i := strings.LastIndexByte(fn, '.')
	if i < 0 {
		if _, ok := e.Files[e.Entry]; !ok {
			ev.at(e, "funcName", CodeMissingFunction, fmt.Sprintf("funcName %q needs code: add %s with exports.%s = function (argDict, ctx) {...}, or name a service function (services.X.fn)", fn, e.src.file(e.Entry), fn))
		} else if js := e.src.js[e.Entry]; (js == nil || len(js.syntax) == 0) && !e.HasExport(fn) {
			ev.at(e, "funcName", CodeMissingFunction, fmt.Sprintf("funcName %q is not exported by %s: add exports.%s = function (argDict, ctx) {...}%s", fn, e.src.file(e.Entry), fn, exportsHint(e.Exports)))
		}
		return
	}
	svcName, f := fn[:i], fn[i+1:]
	svc := snap.Elements[svcName]
	switch {
	case svc == nil && ev.exists(svcName):
		return // it exists but is broken; its own problem says why
	case svc == nil:
		ev.at(e, "funcName", CodeUnknownElement, fmt.Sprintf("funcName %q: service %s does not exist%s; create it or fix the name", fn, svcName, suggest(svcName, sortedKeys(snap.Elements))))
	case !snap.IsA(svcName, MetaServices):
		ev.at(e, "funcName", CodeWrongElement, fmt.Sprintf("funcName %q: %s is not a service (its Meta is %s)", fn, svcName, svc.Meta))
	case svc.Native:
		if !contains(svc.Functions(), f) {
			ev.at(e, "funcName", CodeMissingFunction, fmt.Sprintf("funcName %q: service %s has no function %q; it offers: %s", fn, svcName, f, strings.Join(svc.Functions(), ", ")))
		}
	default:
		if js := svc.src.js[svc.Entry]; js != nil && len(js.syntax) > 0 {
			return
		}
		if !svc.HasExport(f) {
			ev.at(e, "funcName", CodeMissingFunction, fmt.Sprintf("funcName %q: %s does not export %s: add exports.%s = function (args, ctx) {...} to it%s", fn, svc.src.file(svc.Entry), f, f, exportsHint(svc.Exports)))
		}
	}
}

func (ev *evaluation) checkService(e *Element) {
	list, _ := e.Definition["functionList"].([]any)
	seen := map[string]bool{}
	js := e.src.js[e.Entry]
	for i, f := range list {
		fm, _ := f.(map[string]any)
		name, _ := fm["name"].(string)
		if name == "" {
			continue
		}
		path := ptr(ptrIndex("functionList", i), "name")
		if seen[name] {
			ev.at(e, path, CodeBadValue, fmt.Sprintf("function %q is listed twice in functionList; keep one", name))
		}
		seen[name] = true
		if e.Native || (js != nil && len(js.syntax) > 0) {
			continue
		}
		if !e.HasExport(name) {
			ev.at(e, path, CodeMissingFunction, fmt.Sprintf("functionList names %q but %s does not export it: add exports.%s = function (args, ctx) {...}%s", name, e.src.file(e.Entry), name, exportsHint(e.Exports)))
		}
	}
}

func (ev *evaluation) checkModel(e *Element) {
	fields, _ := e.Definition["fields"].([]any)
	seen := map[string]bool{}
	for i, f := range fields {
		fm, _ := f.(map[string]any)
		name, _ := fm["name"].(string)
		if name == "" {
			continue
		}
		if seen[name] {
			ev.at(e, ptr(ptrIndex("fields", i), "name"), CodeBadValue, fmt.Sprintf("field %q is declared twice; keep one", name))
		}
		seen[name] = true
	}
}
