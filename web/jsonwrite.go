package web

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/labstack/echo/v4"

	"github.com/trellis-run/trellis/host/vocab"
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
		b, err = encodeJSON(vocab.FiniteValues(i), indent)
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
