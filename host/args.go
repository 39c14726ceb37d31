package host

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/trellis-run/trellis/host/jsvm"
)

// ErrBadArgs: call arguments that are not what a call takes; the message says what to send.
var ErrBadArgs = errors.New("host: bad arguments")

// ArgsFromJSON turns the JSON given to a service call (CLI `trellis call`, HTTP
// POST /api/services/…) into call arguments: an object is the function's one argument, an array
// its positional arguments, empty input no arguments.
func ArgsFromJSON(data []byte) ([]any, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	v, err := ParseJSONValue(data)
	if err != nil {
		return nil, fmt.Errorf("%w: not valid JSON: %v", ErrBadArgs, err)
	}
	switch t := v.(type) {
	case []any:
		return t, nil
	case map[string]any:
		return []any{t}, nil
	default:
		return nil, fmt.Errorf("%w: send a JSON object (the one argument) or an array (positional arguments), got %s", ErrBadArgs, jsvm.DescribeValue(v))
	}
}

// ParseJSONValue decodes one JSON value into the sandbox's value model: integers that fit stay
// int64 (ids keep their precision), other numbers are float64. Trailing data is an error.
func ParseJSONValue(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("more than one JSON value")
	}
	return normalizeNumbers(v), nil
}

func normalizeNumbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	case []any:
		for i := range t {
			t[i] = normalizeNumbers(t[i])
		}
	case map[string]any:
		for k := range t {
			t[k] = normalizeNumbers(t[k])
		}
	}
	return v
}
