package isolate

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"time"

	"github.com/trellis-run/trellis/host/vocab"
)

// isPlain reports whether v is made only of the types the protocol carries as they are: nil,
// bool, int, int64, float64, string, time.Time, []any and map[string]any. It lets the common case
// cross the pipe without a copy.
func isPlain(v any) bool {
	switch x := v.(type) {
	case nil, bool, int, int64, float64, string, time.Time:
		return true
	case []any:
		for _, e := range x {
			if !isPlain(e) {
				return false
			}
		}
		return true
	case map[string]any:
		if x == nil {
			return false // a nil map inside an interface does not survive gob as a map
		}
		for _, e := range x {
			if !isPlain(e) {
				return false
			}
		}
		return true
	}
	return false
}

// normalize returns v reduced to the plain value model of jsvm.Call (see isPlain): other numeric
// types become int64 or float64, slices and arrays become []any, maps become map[string]any
// (keys formatted), pointers are followed, json.Number is parsed, structs and other types go
// through encoding/json (so their json tags apply), and what cannot be represented
// (functions, channels) becomes nil — as it would in the in-process VM.
func normalize(v any) any {
	if isPlain(v) {
		return v
	}
	return normalizeValue(v, 0)
}

// maxDepth stops normalizing self-referencing values; deeper parts become nil.
const maxDepth = 1000

func normalizeValue(v any, depth int) any {
	if depth > maxDepth {
		return nil
	}
	switch x := v.(type) {
	case nil, bool, int, int64, float64, string, time.Time:
		return x
	case *time.Time:
		if x == nil {
			return nil
		}
		return *x
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalizeValue(e, depth+1)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalizeValue(e, depth+1)
		}
		return out
	case error:
		return x.Error()
	case json.Marshaler:
		return viaJSON(x)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := rv.Uint()
		if u > math.MaxInt64 {
			return float64(u)
		}
		return int64(u)
	case reflect.Float32, reflect.Float64:
		return rv.Float()
	case reflect.Bool:
		return rv.Bool()
	case reflect.String:
		return rv.String()
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nil
		}
		return normalizeValue(rv.Elem().Interface(), depth+1)
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return nil
		}
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = normalizeValue(rv.Index(i).Interface(), depth+1)
		}
		return out
	case reflect.Map:
		if rv.IsNil() {
			return nil
		}
		out := make(map[string]any, rv.Len())
		it := rv.MapRange()
		for it.Next() {
			out[fmt.Sprint(it.Key().Interface())] = normalizeValue(it.Value().Interface(), depth+1)
		}
		return out
	case reflect.Struct:
		return viaJSON(v)
	}
	return nil // functions, channels, unsafe pointers: nothing JS could use
}

// viaJSON converts v the way the host's JSON API would show it.
func viaJSON(v any) any {
	out, err := vocab.ViaJSON(v)
	if err != nil {
		return nil
	}
	return out
}

// normalizeArgs normalizes each element of a slice of arguments in place of a copy.
func normalizeArgs(args []any) []any {
	if isPlain(any(args)) {
		return args
	}
	out := make([]any, len(args))
	for i, a := range args {
		out[i] = normalizeValue(a, 0)
	}
	return out
}

// normalizeMap normalizes a map of values (definitions, details, ctx extras).
func normalizeMap(m map[string]any) map[string]any {
	if m == nil || isPlain(any(m)) {
		return m
	}
	return normalizeValue(m, 0).(map[string]any)
}

// sizeAtLeast returns a lower bound of the bytes v takes on the wire, stopping as soon as it
// passes limit: a worker uses it to refuse a result bigger than the execution's memory cap
// before it makes the host allocate it.
func sizeAtLeast(v any, limit int64) int64 {
	var n int64
	var walk func(v any)
	walk = func(v any) {
		if n > limit {
			return
		}
		switch x := v.(type) {
		case string:
			n += int64(len(x)) + 1
		case []any:
			n++
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			n++
			for k, e := range x {
				n += int64(len(k)) + 1
				walk(e)
			}
		default:
			n += 2
		}
	}
	walk(v)
	return n
}

// restoreEmpty undoes what gob does to empty arrays: an empty []any inside an interface arrives
// as a nil []any, which encoding/json would show as null where JavaScript returned []. Every
// value a side receives goes through it; containers are fixed in place.
func restoreEmpty(v any) any {
	switch x := v.(type) {
	case []any:
		if x == nil {
			return []any{}
		}
		for i, e := range x {
			x[i] = restoreEmpty(e)
		}
	case map[string]any:
		for k, e := range x {
			switch e.(type) {
			case []any, map[string]any:
				x[k] = restoreEmpty(e)
			}
		}
	}
	return v
}

// restoreEmptyArgs applies restoreEmpty to each argument (the slice itself may stay nil: no
// arguments is no arguments).
func restoreEmptyArgs(args []any) {
	for i, a := range args {
		args[i] = restoreEmpty(a)
	}
}
