package vocab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
)

// DecodeJSON decodes one JSON value into the value model every layer passes around (nil, bool,
// string, int64, float64, []any, map[string]any). Integers that fit int64 stay int64: JSON from
// the bus, the task store, a model's JSON field or an HTTP body must hand an id such as
// 9007199254740993 to the handler unchanged, which encoding/json's float64 would not. Numbers
// with a fraction or exponent, or beyond int64, are float64. Trailing data is an error.
//
// It is the one JSON-to-value decoder: a second one that forgets UseNumber is how ids above
// 2^53 used to change on their way through the bus.
func DecodeJSON(data []byte) (any, error) {
	if onlySmallIntegers(data) {
		// The common case — ids, counts and text — decodes twice as fast through Unmarshal: every
		// number is then a whole number a float64 holds exactly, so turning each back into an
		// int64 gives what the exact path below would.
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			return nil, err
		}
		return numbers(v), nil
	}
	return decodeExact(data)
}

// decodeExact is DecodeJSON for any input: every number literal as a json.Number first, then an
// int64 where it is a whole number that fits, else a float64.
func decodeExact(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	// Anything after the value but white space is refused, a second value or garbage alike.
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON value")
	}
	if err := inRange(v); err != nil {
		return nil, err
	}
	return numbers(v), nil
}

// inRange refuses a number literal no float64 holds (1e99999): decoded, it would be ±Infinity,
// which nothing downstream can write back as JSON — a body that reached a handler that way
// answered 500. Only the exact path sees such literals: the fast path takes 15 digits at most.
func inRange(v any) error {
	switch t := v.(type) {
	case json.Number:
		if _, err := t.Int64(); err == nil {
			return nil
		}
		if f, err := t.Float64(); err != nil || math.IsInf(f, 0) {
			return fmt.Errorf("number %s is out of range: JSON numbers must fit a 64-bit float (at most about 1.8e308)", truncated(string(t), 40))
		}
	case []any:
		for _, x := range t {
			if err := inRange(x); err != nil {
				return err
			}
		}
	case map[string]any:
		for _, x := range t {
			if err := inRange(x); err != nil {
				return err
			}
		}
	}
	return nil
}

func truncated(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// DecodeJSONObject is DecodeJSON for where only an object (or null) is valid.
func DecodeJSONObject(data []byte) (map[string]any, error) {
	v, err := DecodeJSON(data)
	if err != nil || v == nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("not a JSON object: " + Describe(v))
	}
	return m, nil
}

// EncodeJSON is json.Marshal for the value model, writing NaN and ±Infinity as null the way
// JSON.stringify does. A JS function may return or throw such numbers; JSON has no words for
// them, and json.Marshal's error made a call that worked answer 500, or its log row and task
// record disagree (one null, the other a failure). Every place that stores or answers a value a
// function made encodes it here, so the answer, the log row and the task record say the same.
func EncodeJSON(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	var unsupported *json.UnsupportedValueError
	if errors.As(err, &unsupported) {
		b, err = json.Marshal(FiniteValues(v))
	}
	return b, err
}

// FiniteValues is v with every NaN and infinite float of the value model (maps of string to
// any, lists of any, at any depth) replaced by nil. It copies what it changes and leaves other
// values as they are.
func FiniteValues(v any) any {
	switch t := v.(type) {
	case float64:
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return nil
		}
	case float32:
		if math.IsNaN(float64(t)) || math.IsInf(float64(t), 0) {
			return nil
		}
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = FiniteValues(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = FiniteValues(x)
		}
		return out
	}
	return v
}

// ViaJSON converts any Go value (a struct, a typed map) into the value model by way of its JSON
// form, with exact integers: what the HTTP API would show of it.
func ViaJSON(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return DecodeJSON(b)
}

// onlySmallIntegers reports whether every number literal in data (outside strings) is a whole
// number of at most 15 digits, without fraction or exponent: a float64 holds each exactly. It only
// looks; malformed data is left for the decoder to refuse.
func onlySmallIntegers(data []byte) bool {
	inString, escaped, inNumber, digits := false, false, false, 0
	for _, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString, inNumber = true, false
		case c >= '0' && c <= '9':
			if !inNumber {
				inNumber, digits = true, 0
			}
			if digits++; digits > 15 {
				return false
			}
		case c == '-' && !inNumber:
			inNumber, digits = true, 0
		case inNumber && (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'):
			return false
		default:
			inNumber = false
		}
	}
	return true
}

// numbers puts a decoded value's numbers in the value model, in place. The exact path gives it
// json.Numbers; the fast path float64s, each a whole number a float64 holds exactly (that is
// when the fast path is taken), so every float64 here is an int64.
func numbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	case float64:
		return int64(t)
	case []any:
		for i := range t {
			t[i] = numbers(t[i])
		}
	case map[string]any:
		for k := range t {
			t[k] = numbers(t[k])
		}
	}
	return v
}

// DecodeArgs turns the JSON given to a service call (`trellis call`, POST /api/services/…) into
// call arguments: an object is the function's one argument, an array its positional arguments,
// empty input no arguments. Anything else is an invalid_argument error saying what to send.
func DecodeArgs(data []byte) ([]any, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	v, err := DecodeJSON(data)
	if err != nil {
		return nil, Errorf(CodeInvalidArgument, "arguments are not valid JSON: %v", err)
	}
	switch t := v.(type) {
	case []any:
		return t, nil
	case map[string]any:
		return []any{t}, nil
	default:
		return nil, Errorf(CodeInvalidArgument, "send a JSON object (the one argument) or an array (positional arguments), got %s", Describe(v))
	}
}
