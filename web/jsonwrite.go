package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"

	"github.com/labstack/echo/v4"
)

// finiteJSON is the server's JSON writer: echo's, except that NaN and ±Infinity — numbers a JS
// function may return or throw in its details, which JSON cannot carry — are written as null,
// as JSON.stringify writes them, rather than failing the whole answer (a 500 for a call that
// worked, or an empty 200 for an error whose details held one).
type finiteJSON struct{ echo.DefaultJSONSerializer }

func (finiteJSON) Serialize(c echo.Context, i any, indent string) error {
	b, err := encodeJSON(i, indent)
	var unsupported *json.UnsupportedValueError
	if errors.As(err, &unsupported) {
		b, err = encodeJSON(finiteValues(i), indent)
	}
	if err != nil {
		return err
	}
	_, err = c.Response().Write(b)
	return err
}

func encodeJSON(i any, indent string) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	if indent != "" {
		enc.SetIndent("", indent)
	}
	if err := enc.Encode(i); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// finiteValues is v with every NaN and infinite number of the value model (maps of string to
// any, lists of any) replaced by nil. It copies what it changes; other values are kept as they
// are.
func finiteValues(v any) any {
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
			out[k] = finiteValues(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = finiteValues(x)
		}
		return out
	}
	return v
}
