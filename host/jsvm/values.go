package jsvm

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dop251/goja"

	"github.com/trellis-run/trellis/host/vocab"
)

// maxValueDepth bounds how deeply nested a value crossing the boundary may be; deeper values are
// refused rather than walked, so a hostile value cannot exhaust the Go stack.
const maxValueDepth = 512

// toJS builds a fresh, plain JS value from a Go value of the Call value model. It never wraps Go
// objects: maps and slices are copied into ordinary objects and arrays, so nothing in the
// sandbox can reach back into Go memory, and properties are defined (not assigned) so a key such
// as "__proto__" stays an own data property instead of replacing the prototype.
func (rt *jsRuntime) toJS(v any) goja.Value {
	return rt.toJSDepth(v, 0)
}

func (rt *jsRuntime) toJSDepth(v any, depth int) goja.Value {
	r := rt.r
	if depth > maxValueDepth {
		panic(rt.newCodedError(CodeInvalidArg, fmt.Sprintf("value nested deeper than %d levels; flatten it", maxValueDepth), nil))
	}
	switch t := v.(type) {
	case nil:
		return goja.Null()
	case goja.Value:
		// Primitives belong to no runtime; an object might belong to another one and is refused.
		if _, isObject := t.(*goja.Object); isObject {
			return goja.Undefined()
		}
		return t
	case bool:
		return r.ToValue(t)
	case string:
		return r.ToValue(t)
	case float64:
		return r.ToValue(t)
	case float32:
		return r.ToValue(float64(t))
	case int:
		return r.ToValue(int64(t))
	case int8:
		return r.ToValue(int64(t))
	case int16:
		return r.ToValue(int64(t))
	case int32:
		return r.ToValue(int64(t))
	case int64:
		return intValue(r, t)
	case uint:
		return r.ToValue(float64(t))
	case uint8:
		return r.ToValue(int64(t))
	case uint16:
		return r.ToValue(int64(t))
	case uint32:
		return r.ToValue(int64(t))
	case uint64:
		if t <= math.MaxInt64 {
			return r.ToValue(int64(t))
		}
		return r.ToValue(float64(t))
	case json.Number:
		if n, err := t.Int64(); err == nil {
			return intValue(r, n)
		}
		f, _ := t.Float64()
		return r.ToValue(f)
	case *big.Int:
		if t == nil {
			return goja.Null()
		}
		if t.IsInt64() {
			return intValue(r, t.Int64())
		}
		return r.ToValue(t)
	case time.Time:
		return rt.newDate(t)
	case *time.Time:
		if t == nil {
			return goja.Null()
		}
		return rt.newDate(*t)
	case []any:
		items := make([]any, len(t))
		for i, e := range t {
			items[i] = rt.toJSDepth(e, depth+1)
		}
		return r.NewArray(items...)
	case map[string]any:
		o := r.NewObject()
		for k, e := range t {
			_ = o.DefineDataProperty(k, rt.toJSDepth(e, depth+1), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE)
		}
		return o
	case map[string]string:
		o := r.NewObject()
		for k, e := range t {
			_ = o.DefineDataProperty(k, r.ToValue(e), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE)
		}
		return o
	case []string:
		items := make([]any, len(t))
		for i, e := range t {
			items[i] = r.ToValue(e)
		}
		return r.NewArray(items...)
	case []map[string]any:
		items := make([]any, len(t))
		for i, e := range t {
			items[i] = rt.toJSDepth(e, depth+1)
		}
		return r.NewArray(items...)
	case error:
		return r.ToValue(t.Error())
	}
	return rt.toJSReflect(v, depth)
}

// toJSReflect copies other slices and maps element by element and sends everything else (structs
// with json tags, named types) through encoding/json, so a host returning its own types still
// yields plain JS values and never a reflection wrapper.
func (rt *jsRuntime) toJSReflect(v any, depth int) goja.Value {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return goja.Null()
		}
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return goja.Null()
		}
		if rv.Type().Elem().Kind() != reflect.Uint8 {
			items := make([]any, rv.Len())
			for i := range items {
				items[i] = rt.toJSDepth(rv.Index(i).Interface(), depth+1)
			}
			return rt.r.NewArray(items...)
		}
	case reflect.Map:
		if rv.IsNil() {
			return goja.Null()
		}
		if rv.Type().Key().Kind() == reflect.String {
			o := rt.r.NewObject()
			iter := rv.MapRange()
			for iter.Next() {
				_ = o.DefineDataProperty(iter.Key().String(), rt.toJSDepth(iter.Value().Interface(), depth+1),
					goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE)
			}
			return o
		}
	case reflect.Func, reflect.Chan, reflect.UnsafePointer:
		return goja.Undefined()
	case reflect.Bool:
		return rt.r.ToValue(rv.Bool())
	case reflect.String:
		return rt.r.ToValue(rv.String())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rt.r.ToValue(rv.Int())
	case reflect.Float32, reflect.Float64:
		return rt.r.ToValue(rv.Float())
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(rt.newCodedError(CodeInvalidArg, fmt.Sprintf("value of type %T cannot cross into JavaScript: %v", v, err), nil))
	}
	plain, err := vocab.DecodeJSON(b)
	if err != nil {
		panic(rt.newCodedError(CodeInvalidArg, fmt.Sprintf("value of type %T cannot cross into JavaScript: %v", v, err), nil))
	}
	return rt.toJSDepth(plain, depth+1)
}

// maxSafeInteger is Number.MAX_SAFE_INTEGER: past it a JS Number cannot hold every integer.
const maxSafeInteger = 1<<53 - 1

// intValue gives JS an integer exactly: a Number within ±2^53-1, a BigInt past it. An order id
// such as 9007199254740993 would otherwise become the Number 9007199254740992 on its way in, and
// come back out changed; as a BigInt it prints, compares and returns unchanged (the exporter
// turns a BigInt that fits back into an int64), and JSON.stringify writes it as a string.
func intValue(r *goja.Runtime, n int64) goja.Value {
	if n > maxSafeInteger || n < -maxSafeInteger {
		return r.ToValue(big.NewInt(n))
	}
	return r.ToValue(n)
}

func (rt *jsRuntime) newDate(t time.Time) goja.Value {
	d, err := rt.dateNew(nil, rt.r.ToValue(t.UnixMilli()))
	if err != nil {
		return goja.Null()
	}
	return d
}

// exporter copies a JS value into plain Go values (Call's value model). Functions and symbols
// become nil; cycles, values nested deeper than the execution's MaxValueDepth and values larger
// than the budget (about their JSON size) are refused with a message saying what to change,
// before the Go copy is made: a cap is enforced where the bytes are made.
type exporter struct {
	rt       *jsRuntime
	visit    []*goja.Object
	maxDepth int
	maxSize  int64
	size     int64
	// over is called once the value is known to be larger than maxSize; it must not return.
	over func(ex *exporter)
}

// fromJS exports v as it crosses to another element or to the host (arguments, a callee's
// result): at most MaxMessageBytes, refused with a catchable invalid_argument past it. It must
// run inside the runtime (a native function or rt.run): getters and Proxy traps of the value run
// as JS under the execution's limits, and a value that cannot cross is thrown as a coded JS error
// at the point of the crossing.
func (rt *jsRuntime) fromJS(v goja.Value) any {
	limits := rt.limits()
	return rt.export(v, limits.MaxMessageBytes, func(ex *exporter) {
		ex.fail(CodeInvalidArg, "value larger than %d bytes (the cap on one value handed to the host or another element, --max-message); pass less, or page it", limits.MaxMessageBytes)
	})
}

// exportResult exports what an execution hands back to its caller: its result (what is the
// result cap, MaxResultBytes), or its arguments with Call.ReturnArgs (what is the message cap,
// MaxMessageBytes: they came from the host, which bounds them, and a hook's data may be as large
// as an event's kwargs). used counts what earlier values of the same kind took. Past the limit
// the execution ends, uncatchably, with result_too_large and no value.
func (rt *jsRuntime) exportResult(v goja.Value, used *int64, args bool) any {
	limits := rt.limits()
	limit, what, flag, field := limits.MaxResultBytes, "the result", "--max-result", "maxResultBytes"
	if args {
		limit, what, flag, field = limits.MaxMessageBytes, "the arguments handed back", "--max-message", "maxMessageBytes"
	}
	ex := &exporter{rt: rt, maxDepth: limits.MaxValueDepth, maxSize: limit - *used}
	ex.over = func(ex *exporter) {
		e := &Error{Code: CodeResultTooLarge, Message: fmt.Sprintf(
			"%s is larger than %d bytes as JSON (the cap, %s); return less, or store it and return a reference", what, limit, flag),
			Details: map[string]any{"limit": limit, "cap": field}}
		if rt.x != nil {
			rt.x.abort(e)
		}
		panic(rt.newCodedError(e.Code, e.Message, nil))
	}
	out := ex.value(v, 0)
	*used += ex.size
	return out
}

func (rt *jsRuntime) export(v goja.Value, maxSize int64, over func(*exporter)) any {
	ex := &exporter{rt: rt, maxDepth: rt.limits().MaxValueDepth, maxSize: maxSize, over: over}
	return ex.value(v, 0)
}

// limits are the running execution's limits; outside one (a module loading for a check), the
// defaults.
func (rt *jsRuntime) limits() Limits {
	if rt.x == nil {
		return DefaultLimits
	}
	return rt.x.limits
}

func (ex *exporter) fail(code, format string, args ...any) {
	panic(ex.rt.newCodedError(code, fmt.Sprintf(format, args...), nil))
}

// grow counts n more bytes of the value's JSON and stops the export once past the budget.
func (ex *exporter) grow(n int64) {
	ex.size += n
	if ex.size > ex.maxSize {
		ex.over(ex)
	}
}

func (ex *exporter) value(v goja.Value, depth int) any {
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return nil
	}
	if _, isSymbol := v.(*goja.Symbol); isSymbol {
		return nil
	}
	o, ok := v.(*goja.Object)
	if !ok {
		if s, isString := v.(goja.String); isString {
			// The length is known before the string is exported (a copy, for non-ASCII text).
			ex.grow(int64(s.Length()) + 2)
		}
		switch e := v.Export().(type) {
		case int64, float64:
			ex.grow(8)
			return e
		case bool:
			ex.grow(5)
			return e
		case string:
			return e
		case *big.Int:
			ex.grow(20)
			if e.IsInt64() {
				return e.Int64()
			}
			return e.String()
		default:
			return nil // symbols
		}
	}
	if depth >= ex.maxDepth {
		ex.fail(CodeInvalidArg, "value nested deeper than %d levels (the nesting cap, --max-depth); flatten it", ex.maxDepth)
	}
	for _, seen := range ex.visit {
		if seen == o {
			ex.fail(CodeInvalidArg, "value contains a cycle; only tree-shaped (JSON-like) values can cross elements")
		}
	}
	ex.visit = append(ex.visit, o)
	defer func() { ex.visit = ex.visit[:len(ex.visit)-1] }()
	ex.grow(1)
	switch o.ClassName() {
	case "Function":
		return nil
	case "Date":
		t, ok := o.Export().(time.Time)
		if !ok {
			return nil // an invalid Date
		}
		return t
	case "Array":
		n := toLength(o.Get("length"))
		ex.grow(n)
		out := make([]any, n)
		for i := range out {
			out[i] = ex.value(o.Get(fmt.Sprint(i)), depth+1)
		}
		return out
	case "String":
		return o.String()
	case "Number":
		return o.ToNumber().Export()
	case "Boolean":
		if b, ok := o.Export().(bool); ok {
			return b
		}
	}
	keys := o.Keys()
	ex.grow(int64(len(keys)))
	out := make(map[string]any, len(keys))
	for _, k := range keys {
		ex.grow(int64(len(k)) + 3)
		out[k] = ex.value(o.Get(k), depth+1)
	}
	return out
}

func toLength(v goja.Value) int64 {
	if v == nil {
		return 0
	}
	n := v.ToInteger()
	if n < 0 {
		return 0
	}
	return n
}

// cutString returns at most n bytes of s, ending on a whole UTF-8 character, as a copy: a
// substring would keep the whole of a huge original alive.
func cutString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strings.Clone(s[:n])
}

// capError cuts an execution's error to the error cap (Limits.MaxErrorBytes): its message and
// stack each end with a marker naming the cap when cut, and details whose JSON is larger are
// replaced by what they were (their code kept), so a thrown 64 MiB message costs the log row and
// the HTTP answer no more than the cap.
func capError(e *Error, limit int64) {
	if e == nil || limit <= 0 {
		return
	}
	n := int(limit)
	if len(e.Message) > n {
		e.Message = cutString(e.Message, n) + fmt.Sprintf(" …[message truncated: %d bytes, over the error cap of %d (--max-error)]", len(e.Message), limit)
	}
	if len(e.Stack) > n {
		e.Stack = cutString(e.Stack, n) + fmt.Sprintf("\n…[stack truncated: %d bytes, over the error cap of %d (--max-error)]", len(e.Stack), limit)
	}
	if len(e.Details) > 0 && jsonSizeOver(e.Details, limit) {
		kept := map[string]any{"truncated": fmt.Sprintf("the error's details were larger than the error cap of %d bytes (--max-error)", limit)}
		if c, ok := e.Details["code"].(string); ok && len(c) <= 256 {
			kept["code"] = c
		}
		e.Details = kept
	}
}

// jsonSizeOver reports whether the JSON of v (a plain value) is larger than limit, walking no
// further than it takes to know.
func jsonSizeOver(v any, limit int64) bool {
	var n int64
	var walk func(v any, depth int) bool
	walk = func(v any, depth int) bool {
		if depth > maxValueDepth {
			return true
		}
		switch t := v.(type) {
		case string:
			n += int64(len(t)) + 2
		case []any:
			n += 2
			for _, e := range t {
				if n++; n > limit || walk(e, depth+1) {
					return true
				}
			}
		case map[string]any:
			n += 2
			for k, e := range t {
				if n += int64(len(k)) + 4; n > limit || walk(e, depth+1) {
					return true
				}
			}
		default:
			n += 8
		}
		return n > limit
	}
	return walk(v, 0)
}
