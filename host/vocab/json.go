package vocab

import (
	"bytes"
	"encoding/json"
	"errors"
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
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("more than one JSON value")
	}
	return exactNumbers(v), nil
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

// ViaJSON converts any Go value (a struct, a typed map) into the value model by way of its JSON
// form, with exact integers: what the HTTP API would show of it.
func ViaJSON(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return DecodeJSON(b)
}

func exactNumbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	case []any:
		for i := range t {
			t[i] = exactNumbers(t[i])
		}
	case map[string]any:
		for k := range t {
			t[k] = exactNumbers(t[k])
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
