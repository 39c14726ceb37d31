package services

import (
	"fmt"

	"github.com/trellis-run/trellis/host/vocab"
)

// ErrNotImplemented is matched by errors.Is for calls to methods declared by a built-in
// element that no Go code serves yet; its code is not_implemented.
var ErrNotImplemented = vocab.Sentinel(vocab.CodeNotImplemented, "services: method not implemented")

func invalidArg(method, format string, a ...any) error {
	return vocab.Errorf(vocab.CodeInvalidArgument, "services: %s: %s", method, fmt.Sprintf(format, a...))
}
