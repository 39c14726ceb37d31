package host

import (
	"bytes"
	"fmt"

	"github.com/trellis-run/trellis/host/vocab"
)

// ErrBadArgs: call arguments that are not what a call takes; the message says what to send.
var ErrBadArgs = vocab.Sentinel(vocab.CodeInvalidArgument, "host: bad arguments")

// ArgsFromJSON turns the JSON given to a service call (CLI `trellis call`, HTTP
// POST /api/services/…) into call arguments: an object is the function's one argument, an array
// its positional arguments, empty input no arguments.
func ArgsFromJSON(data []byte) ([]any, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	v, err := vocab.DecodeJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%w: not valid JSON: %v", ErrBadArgs, err)
	}
	switch t := v.(type) {
	case []any:
		return t, nil
	case map[string]any:
		return []any{t}, nil
	default:
		return nil, fmt.Errorf("%w: send a JSON object (the one argument) or an array (positional arguments), got %s", ErrBadArgs, vocab.Describe(v))
	}
}
