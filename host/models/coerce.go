package models

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/trellis-run/trellis/host/vocab"
)

// DateLayout is how a Date is stored and shown: "YYYY-MM-DD".
const DateLayout = "2006-01-02"

// Row is one row in the *stored* value model: id int64; AutoInt/Integer int64; Numeric float64;
// Stext/Ltext string; Boolean bool; Date string "YYYY-MM-DD"; Datetime time.Time (UTC, whole
// milliseconds); JSON any (plain JSON values: map[string]any, []any, string, int64 for whole
// numbers given as integers, float64 for others, bool, nil — as vocab.DecodeJSON reads JSON);
// nil = NULL. Rows a Store returns hold every field of the schema (nil when NULL).
type Row map[string]any

// Coerce turns input from JS/HTTP (plain JSON-ish values: float64, int64, int, json.Number,
// string, bool, map, slice, time.Time) into the stored value model, checking every field, so
// every write path applies the same rules and every problem is reported at once (errors.Join;
// each wraps ErrUnknownField or ErrInvalidValue and names the field):
//   - Integer: an integral number (a fraction is an error); Numeric: a finite number;
//   - Stext: a string of at most 255 characters; Ltext: any string (no NUL, valid UTF-8);
//   - Boolean: true or false (no 0/1, no "true");
//   - Datetime: "YYYY-MM-DD HH:mm:ss" in loc, ISO-8601, epoch milliseconds or a time.Time,
//     stored in UTC and cut to whole milliseconds;
//   - Date: "YYYY-MM-DD", or any datetime form, whose date in loc is taken;
//   - JSON: any plain JSON value, integers as int64, other numbers float64 (a time.Time inside becomes a
//     "YYYY-MM-DD HH:mm:ss" string in loc);
//   - nil (null) stores NULL in any field.
//
// The result holds only the fields given (a patch stays a patch). JSON values already in plain
// form are kept, not copied, so the result may share them with in. "id" in input is dropped when
// ignoreID is true; otherwise a non-null id must be a positive integer. loc nil means UTC.
func Coerce(s Schema, in map[string]any, loc *time.Location, ignoreID bool) (Row, error) {
	if loc == nil {
		loc = time.UTC
	}
	out := make(Row, len(in))
	var problems map[string]error // by field name, reported in name order
	for name, v := range in {
		if name == IDField && ignoreID {
			continue
		}
		f, ok := s.Field(name)
		if !ok {
			problems = addProblem(problems, name, unknownField(s, name))
			continue
		}
		if name == IDField && v == nil {
			continue // no id given: the store assigns one
		}
		cv, err := CoerceValue(f, v, loc)
		if err != nil {
			problems = addProblem(problems, name, err)
			continue
		}
		out[name] = cv
	}
	if problems != nil {
		errs := make([]error, 0, len(problems))
		for _, name := range sortedKeys(problems) {
			errs = append(errs, problems[name])
		}
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func addProblem(m map[string]error, name string, err error) map[string]error {
	if m == nil {
		m = map[string]error{}
	}
	m[name] = err
	return m
}

// Normalize is what every Store applies to the rows it is given: Coerce in UTC keeping "id".
// Rows already in the stored value model come out unchanged, so the check is cheap insurance
// that nothing else reaches the database.
func Normalize(s Schema, r Row) (Row, error) {
	return Coerce(s, r, time.UTC, false)
}

func unknownField(s Schema, name string) error {
	names := make([]string, 0, len(s.Fields)+1)
	for _, f := range s.AllFields() {
		names = append(names, f.Name)
	}
	return fmt.Errorf("%w: model %s has no field %q; its fields are %s", ErrUnknownField, s.Model, name, strings.Join(names, ", "))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// CoerceValue applies Coerce's rules to one value of field f; filters use it for the values
// they compare with. nil stays nil.
func CoerceValue(f Field, v any, loc *time.Location) (any, error) {
	if v == nil {
		return nil, nil
	}
	if loc == nil {
		loc = time.UTC
	}
	bad := func(hint string) error {
		msg := fmt.Sprintf("field %q is %s; got %s", f.Name, f.Type, describe(v))
		if hint != "" {
			msg += "; " + hint
		}
		return fmt.Errorf("%w: %s", ErrInvalidValue, msg)
	}
	switch f.Type {
	case TypeAutoInt, TypeInteger:
		n, err := toInt64(v)
		if err != nil {
			return nil, bad(err.Error())
		}
		if f.Type == TypeAutoInt && n < 1 {
			return nil, bad("ids start at 1")
		}
		return n, nil
	case TypeNumeric:
		x, ok := toFloat64(v)
		if !ok {
			return nil, bad("give a number")
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, bad("give a finite number")
		}
		return x, nil
	case TypeStext, TypeLtext:
		str, ok := v.(string)
		if !ok {
			return nil, bad("give a string")
		}
		if err := checkText(str); err != nil {
			return nil, fmt.Errorf("%w: field %q is %s; %s", ErrInvalidValue, f.Name, f.Type, err)
		}
		if f.Type == TypeStext {
			if n := utf8.RuneCountInString(str); n > StextMaxLen {
				return nil, fmt.Errorf("%w: field %q is Stext, at most %d characters; got %d characters (use an Ltext field for longer text)",
					ErrInvalidValue, f.Name, StextMaxLen, n)
			}
		}
		return str, nil
	case TypeBoolean:
		b, ok := v.(bool)
		if !ok {
			return nil, bad("give true or false")
		}
		return b, nil
	case TypeDate:
		if str, ok := v.(string); ok {
			if d, err := time.Parse(DateLayout, strings.TrimSpace(str)); err == nil {
				if err := checkYear(d); err != nil {
					return nil, bad(err.Error())
				}
				return d.Format(DateLayout), nil
			}
		}
		if _, ok := v.(bool); ok {
			return nil, bad(`use "YYYY-MM-DD" or a datetime`)
		}
		t, err := vocab.ParseDatetime(v, loc)
		if err != nil {
			return nil, bad(`use "YYYY-MM-DD" or a datetime`)
		}
		t = t.In(loc)
		if err := checkYear(t); err != nil {
			return nil, bad(err.Error())
		}
		return t.Format(DateLayout), nil
	case TypeDatetime:
		if _, ok := v.(bool); ok {
			return nil, bad(`use "YYYY-MM-DD HH:mm:ss", ISO-8601 or epoch milliseconds`)
		}
		t, err := vocab.ParseDatetime(v, loc)
		if err != nil {
			return nil, bad(`use "YYYY-MM-DD HH:mm:ss", ISO-8601 or epoch milliseconds`)
		}
		t = t.UTC().Truncate(time.Millisecond)
		if err := checkYear(t); err != nil {
			return nil, bad(err.Error())
		}
		return t, nil
	case TypeJSON:
		if isPlainJSON(v, 0) {
			return v, nil // already stored form: bulk imports skip the copy
		}
		j, err := plainJSON(v, loc, 0)
		if err != nil {
			return nil, fmt.Errorf("%w: field %q is JSON; %s", ErrInvalidValue, f.Name, err)
		}
		return j, nil
	}
	return nil, fmt.Errorf("%w: field %q has the unknown type %q", ErrSchema, f.Name, f.Type)
}

// checkText refuses what no database stores as text: PostgreSQL rejects NUL and invalid UTF-8,
// so SQLite refuses them too and both backends keep the same rows.
func checkText(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("the text is not valid UTF-8")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return errors.New("the text contains a NUL character (\\u0000), which databases cannot store")
	}
	return nil
}

// checkYear keeps dates within years 1–9999, which both backends store and "YYYY-MM-DD" can
// write.
func checkYear(t time.Time) error {
	if y := t.Year(); y < 1 || y > 9999 {
		return fmt.Errorf("year %d is out of range (1–9999)", y)
	}
	return nil
}

const (
	minInt64Float = -9223372036854775808.0 // -2^63, exactly representable
	maxInt64Float = 9223372036854775808.0  // 2^63, the first float64 above MaxInt64
)

func toInt64(v any) (int64, error) {
	switch n := v.(type) {
	case int64:
		return n, nil
	case int:
		return int64(n), nil
	case int32:
		return int64(n), nil
	case int16:
		return int64(n), nil
	case int8:
		return int64(n), nil
	case uint8:
		return int64(n), nil
	case uint16:
		return int64(n), nil
	case uint32:
		return int64(n), nil
	case uint:
		if uint64(n) <= math.MaxInt64 {
			return int64(n), nil
		}
		return 0, errors.New("the number is too large for a 64-bit integer")
	case uint64:
		if n <= math.MaxInt64 {
			return int64(n), nil
		}
		return 0, errors.New("the number is too large for a 64-bit integer")
	case json.Number:
		if i, err := n.Int64(); err == nil {
			return i, nil
		}
		f, err := n.Float64()
		if err != nil {
			return 0, errors.New("give an integer")
		}
		return toInt64(f)
	case float32:
		return toInt64(float64(n))
	case float64:
		if math.IsNaN(n) || math.IsInf(n, 0) {
			return 0, errors.New("give an integer")
		}
		if n != math.Trunc(n) {
			return 0, errors.New("give a whole number")
		}
		if n < minInt64Float || n >= maxInt64Float {
			return 0, errors.New("the number is out of the 64-bit integer range")
		}
		return int64(n), nil
	}
	return 0, errors.New("give an integer")
}

func toFloat64(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case int32:
		return float64(n), true
	case int16:
		return float64(n), true
	case int8:
		return float64(n), true
	case uint:
		return float64(n), true
	case uint64:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint8:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

// maxJSONDepth bounds nesting so a hostile value cannot exhaust the stack here or in a database.
const maxJSONDepth = 200

// isPlainJSON reports, without allocating, whether v is already in the stored form of a JSON
// value.
func isPlainJSON(v any, depth int) bool {
	if depth > maxJSONDepth {
		return false
	}
	switch t := v.(type) {
	case nil, bool:
		return true
	case float64:
		return !math.IsNaN(t) && !math.IsInf(t, 0)
	case string:
		return checkText(t) == nil
	case map[string]any:
		for k, e := range t {
			if checkText(k) != nil || !isPlainJSON(e, depth+1) {
				return false
			}
		}
		return true
	case []any:
		for _, e := range t {
			if !isPlainJSON(e, depth+1) {
				return false
			}
		}
		return true
	}
	return false
}

// plainJSON copies v into plain JSON values (map[string]any, []any, string, float64, bool, nil),
// so every backend stores and returns the same thing.
func plainJSON(v any, loc *time.Location, depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, fmt.Errorf("the value is nested more than %d levels deep", maxJSONDepth)
	}
	switch t := v.(type) {
	case nil, bool:
		return t, nil
	case string:
		if err := checkText(t); err != nil {
			return nil, err
		}
		return t, nil
	case time.Time:
		return vocab.FormatDatetime(t, loc), nil
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			if err := checkText(k); err != nil {
				return nil, fmt.Errorf("key %q: %w", k, err)
			}
			c, err := plainJSON(e, loc, depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = c
		}
		return out, nil
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			c, err := plainJSON(e, loc, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	}
	// Whole numbers of integer types stay int64, as vocab.DecodeJSON reads them back: an id
	// such as 9007199254740993 inside a JSON field is stored and returned exactly.
	switch n := v.(type) {
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		if i, err := toInt64(n); err == nil {
			return i, nil
		}
	case json.Number:
		if i, err := n.Int64(); err == nil {
			return i, nil
		}
	}
	if x, ok := toFloat64(v); ok {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("got %s; JSON has no NaN or Infinity", describe(v))
		}
		return x, nil
	}
	// Anything else (typed slices and maps, structs from Go callers) goes through encoding/json.
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("got %s, which is not JSON: %v", describe(v), err)
	}
	back, err := vocab.DecodeJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("got %s, which is not JSON: %v", describe(v), err)
	}
	return plainJSON(back, loc, depth)
}

// describe says what a value is in the words a JavaScript author uses: `"abc" (a string)`.
func describe(v any) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case string:
		r := []rune(t)
		if len(r) > 40 {
			return fmt.Sprintf("%q… (a string of %d characters)", string(r[:40]), len(r))
		}
		return fmt.Sprintf("%q (a string)", t)
	case bool:
		return fmt.Sprintf("%t (a boolean)", t)
	case time.Time:
		return fmt.Sprintf("%s (a date)", t.Format(time.RFC3339Nano))
	case json.Number:
		return fmt.Sprintf("%s (a number)", t.String())
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	if _, ok := toFloat64(v); ok {
		return fmt.Sprintf("%v (a number)", v)
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Map, reflect.Struct:
		return fmt.Sprintf("an object (%T)", v)
	case reflect.Slice, reflect.Array:
		return fmt.Sprintf("an array (%T)", v)
	}
	return fmt.Sprintf("%v (%T)", v, v)
}

// Present turns a stored Row into what JS/HTTP sees: Datetime as "YYYY-MM-DD HH:mm:ss" in loc
// (vocab.FormatDatetime), id and ints as int64, everything else as stored; every field of the
// schema is present (nil when NULL), so scripts never meet undefined. loc nil means UTC.
func Present(s Schema, r Row, loc *time.Location) map[string]any {
	fields := s.AllFields()
	out := make(map[string]any, len(fields))
	for _, f := range fields {
		v := r[f.Name]
		switch f.Type {
		case TypeDatetime:
			if t, ok := v.(time.Time); ok {
				v = vocab.FormatDatetime(t, loc)
			}
		case TypeAutoInt, TypeInteger:
			if v != nil {
				if n, err := toInt64(v); err == nil {
					v = n
				}
			}
		}
		out[f.Name] = v
	}
	return out
}
