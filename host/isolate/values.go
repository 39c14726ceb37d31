package isolate

import (
	"encoding/binary"
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
			return false // a nil map crosses as nil; normalize makes it the empty object JS expects
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
// as a nil []any, which encoding/json would show as null where JavaScript returned []. The values
// of a frame now cross in wireValues, which keeps [] apart from null, so for them this is a
// no-op; it stays for what gob itself carries (a load's error details). Containers are fixed in
// place.
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

// Values cross the pipe in an encoding of their own (wireValue), not gob's. gob encodes a value
// held in an interface into a buffer of its own and then copies that into its parent's, so a
// value nested d deep costs d copies of itself: a 4 MiB string 64 levels down took 244 MiB to
// encode, and a 17 KiB request nested 9,000 deep took the host 914 MiB (issue 12). The value
// model is nine kinds, so the encoding is short: one tag byte per value, uvarint lengths,
// written in one pass into one buffer. It keeps every kind exact (int apart from int64, NaN and
// ±Infinity, a time.Time's instant and zone offset, nil apart from an empty array or object),
// and the reader checks nesting and every length against what is left of the message, so a
// broken frame cannot make it allocate more than the frame's own size.
const (
	tagNil byte = iota
	tagFalse
	tagTrue
	tagInt64
	tagInt
	tagFloat
	tagString
	tagTime
	tagArray
	tagObject
)

// maxWireDepth is the deepest value a frame may carry: the host refuses deeper values before it
// sends them (Limits.MaxValueDepth, at most host.MaxValueDepthCeiling); this only stops a
// broken frame.
const maxWireDepth = 1024

// wireValues are the plain values of one frame, encoded as a list (see frame.pack).
type wireValues []any

// GobEncode writes the values in the encoding above.
func (w wireValues) GobEncode() ([]byte, error) {
	return appendWire(nil, []any(w), 0)
}

// GobDecode reads them back.
func (w *wireValues) GobDecode(b []byte) error {
	r := wireReader{b: b}
	v, err := r.value(0)
	if err != nil {
		return err
	}
	if r.off != len(r.b) {
		return fmt.Errorf("%w: %d bytes after the frame's values", ErrProtocol, len(r.b)-r.off)
	}
	list, ok := v.([]any)
	if !ok {
		return fmt.Errorf("%w: a frame's values are not a list", ErrProtocol)
	}
	*w = list
	return nil
}

func appendWire(b []byte, v any, depth int) ([]byte, error) {
	if depth > maxWireDepth {
		return nil, fmt.Errorf("%w: value nested deeper than %d levels", ErrProtocol, maxWireDepth)
	}
	var err error
	switch x := v.(type) {
	case nil:
		return append(b, tagNil), nil
	case bool:
		if x {
			return append(b, tagTrue), nil
		}
		return append(b, tagFalse), nil
	case int64:
		return binary.AppendVarint(append(b, tagInt64), x), nil
	case int:
		return binary.AppendVarint(append(b, tagInt), int64(x)), nil
	case float64:
		return binary.LittleEndian.AppendUint64(append(b, tagFloat), math.Float64bits(x)), nil
	case string:
		b = binary.AppendUvarint(append(b, tagString), uint64(len(x)))
		return append(b, x...), nil
	case time.Time:
		t, err := x.MarshalBinary()
		if err != nil {
			return nil, err
		}
		b = binary.AppendUvarint(append(b, tagTime), uint64(len(t)))
		return append(b, t...), nil
	case []any:
		if x == nil {
			return append(b, tagNil), nil
		}
		b = binary.AppendUvarint(append(b, tagArray), uint64(len(x)))
		for _, e := range x {
			if b, err = appendWire(b, e, depth+1); err != nil {
				return nil, err
			}
		}
		return b, nil
	case map[string]any:
		if x == nil {
			return append(b, tagNil), nil
		}
		b = binary.AppendUvarint(append(b, tagObject), uint64(len(x)))
		for k, e := range x {
			b = binary.AppendUvarint(b, uint64(len(k)))
			b = append(b, k...)
			if b, err = appendWire(b, e, depth+1); err != nil {
				return nil, err
			}
		}
		return b, nil
	}
	return nil, fmt.Errorf("%w: a %T cannot cross the pipe (values are normalized first)", ErrProtocol, v)
}

type wireReader struct {
	b   []byte
	off int
}

func (r *wireReader) fail(what string) error {
	return fmt.Errorf("%w: broken value in a frame (%s at byte %d)", ErrProtocol, what, r.off)
}

func (r *wireReader) uvarint() (uint64, error) {
	n, size := binary.Uvarint(r.b[r.off:])
	if size <= 0 {
		return 0, r.fail("length")
	}
	r.off += size
	return n, nil
}

// length reads a count of items (or bytes) each of which takes at least one byte of what is left.
func (r *wireReader) length() (int, error) {
	n, err := r.uvarint()
	if err != nil {
		return 0, err
	}
	if n > uint64(len(r.b)-r.off) {
		return 0, r.fail("length past the end")
	}
	return int(n), nil
}

func (r *wireReader) bytes() ([]byte, error) {
	n, err := r.length()
	if err != nil {
		return nil, err
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s, nil
}

func (r *wireReader) value(depth int) (any, error) {
	if depth > maxWireDepth {
		return nil, r.fail("nesting")
	}
	if r.off >= len(r.b) {
		return nil, r.fail("end")
	}
	tag := r.b[r.off]
	r.off++
	switch tag {
	case tagNil:
		return nil, nil
	case tagFalse:
		return false, nil
	case tagTrue:
		return true, nil
	case tagInt64, tagInt:
		n, size := binary.Varint(r.b[r.off:])
		if size <= 0 {
			return nil, r.fail("integer")
		}
		r.off += size
		if tag == tagInt {
			return int(n), nil
		}
		return n, nil
	case tagFloat:
		if len(r.b)-r.off < 8 {
			return nil, r.fail("number")
		}
		f := math.Float64frombits(binary.LittleEndian.Uint64(r.b[r.off:]))
		r.off += 8
		return f, nil
	case tagString:
		s, err := r.bytes()
		return string(s), err
	case tagTime:
		s, err := r.bytes()
		if err != nil {
			return nil, err
		}
		var t time.Time
		if err := t.UnmarshalBinary(s); err != nil {
			return nil, r.fail("time")
		}
		return t, nil
	case tagArray:
		n, err := r.length()
		if err != nil {
			return nil, err
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = r.value(depth + 1); err != nil {
				return nil, err
			}
		}
		return out, nil
	case tagObject:
		n, err := r.length()
		if err != nil {
			return nil, err
		}
		out := make(map[string]any, n)
		for range n {
			k, err := r.bytes()
			if err != nil {
				return nil, err
			}
			if out[string(k)], err = r.value(depth + 1); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, r.fail(fmt.Sprintf("tag %d", tag))
}
