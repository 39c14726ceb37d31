package services

import (
	"strings"
	"time"

	"github.com/trellis-run/trellis/host/vocab"
)

// FunctionSpec describes one method of a service as its element's functionList declares it:
// `{"name": "sendEvent", "args": [{"name": "sender", "type": "Stext", "required": true}, …]}`.
type FunctionSpec struct {
	Name  string    `json:"name"`
	Title string    `json:"title,omitempty"`
	Args  []ArgSpec `json:"args,omitempty"`
}

// ArgSpec is one declared argument. Type uses the seeds' type names (Stext, Numeric, Datetime,
// JitDict, JitList, RowData...); unknown types accept any value.
type ArgSpec struct {
	Name     string `json:"name"`
	Type     string `json:"type,omitempty"`
	Default  any    `json:"default,omitempty"`
	Required bool   `json:"required,omitempty"`
}

// objectTypes are the argument types whose value is itself an object, so a single object
// argument is that value rather than a bag of named arguments.
var objectTypes = map[string]bool{"JitDict": true, "RowData": true, "JSON": true, "object": true}

// ParseFunctionList reads the functionList of an element definition. Entries without a name
// are skipped; the registry reports them when it validates the element.
func ParseFunctionList(def map[string]any) []FunctionSpec {
	raw, _ := def["functionList"].([]any)
	specs := make([]FunctionSpec, 0, len(raw))
	for _, item := range raw {
		m, _ := item.(map[string]any)
		name, _ := m["name"].(string)
		if name == "" {
			continue
		}
		spec := FunctionSpec{Name: name}
		spec.Title, _ = m["title"].(string)
		args, _ := m["args"].([]any)
		for _, a := range args {
			am, _ := a.(map[string]any)
			an, _ := am["name"].(string)
			if an == "" {
				continue
			}
			arg := ArgSpec{Name: an, Default: am["default"]}
			arg.Type, _ = am["type"].(string)
			arg.Required, _ = am["required"].(bool)
			spec.Args = append(spec.Args, arg)
		}
		specs = append(specs, spec)
	}
	return specs
}

// BindArgs turns the arguments of a call — positional in the declared order, or one object of
// named arguments (the seeds' keyword style) — into named values, filling defaults and checking
// types. `sendEvent("models.U", {id: 1})` and `sendEvent({sender: "models.U", kwargs: {id: 1}})`
// bind to the same map.
//
// A single plain object is taken as named arguments when every key names a declared argument
// and, if the first argument is itself object-typed, the object has that argument's name as a
// key; otherwise it is the first positional argument.
func BindArgs(spec FunctionSpec, args []any) (map[string]any, error) {
	bound := make(map[string]any, len(spec.Args))
	if named, ok := asNamed(spec, args); ok {
		for k, v := range named {
			bound[k] = v
		}
	} else {
		if len(args) > len(spec.Args) {
			return nil, invalidArg(spec.Name, "takes at most %d arguments (%s), got %d", len(spec.Args), argNames(spec), len(args))
		}
		for i, v := range args {
			bound[spec.Args[i].Name] = v
		}
	}
	for _, a := range spec.Args {
		v, present := bound[a.Name]
		if !present || v == nil {
			if a.Required {
				return nil, invalidArg(spec.Name, "missing argument %q (arguments: %s)", a.Name, argNames(spec))
			}
			bound[a.Name] = a.Default
			continue
		}
		if err := checkType(spec.Name, a, v); err != nil {
			return nil, err
		}
	}
	return bound, nil
}

func asNamed(spec FunctionSpec, args []any) (map[string]any, bool) {
	if len(args) != 1 || len(spec.Args) == 0 {
		return nil, false
	}
	m, ok := args[0].(map[string]any)
	if !ok || len(m) == 0 {
		return nil, false
	}
	declared := make(map[string]bool, len(spec.Args))
	for _, a := range spec.Args {
		declared[a.Name] = true
	}
	for k := range m {
		if !declared[k] {
			return nil, false
		}
	}
	if objectTypes[spec.Args[0].Type] {
		if _, has := m[spec.Args[0].Name]; !has {
			return nil, false
		}
	}
	return m, true
}

func checkType(method string, a ArgSpec, v any) error {
	ok := true
	want := a.Type
	switch a.Type {
	case "Stext", "Ltext", "string":
		_, ok = v.(string)
		want = "a string"
	case "Numeric", "Integer", "number":
		switch v.(type) {
		case float64, float32, int, int64, int32:
		default:
			ok = false
		}
		want = "a number"
	case "Boolean", "boolean":
		_, ok = v.(bool)
		want = "true or false"
	case "JitDict", "RowData", "object":
		_, ok = v.(map[string]any)
		want = "an object"
	case "JitList", "array":
		_, ok = v.([]any)
		want = "an array"
	case "Datetime", "Date":
		switch v.(type) {
		case string, float64, int64, int, time.Time:
		default:
			ok = false
		}
		want = `a datetime ("YYYY-MM-DD HH:mm:ss", ISO-8601, epoch milliseconds or a Date)`
	}
	if !ok {
		return invalidArg(method, "argument %q must be %s, got %s", a.Name, want, vocab.Describe(v))
	}
	return nil
}

func argNames(spec FunctionSpec) string {
	names := make([]string, len(spec.Args))
	for i, a := range spec.Args {
		names[i] = a.Name
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
