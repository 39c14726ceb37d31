package host

import "github.com/trellis-run/trellis/host/vocab"

// Sentinel errors of the host; each carries its code (vocab), which the HTTP layer maps to a status in one place.
var (
	// ErrNotFound: an unknown element or function.
	ErrNotFound = vocab.Sentinel(vocab.CodeNotFound, "host: not found")
	// ErrInvalidConfig: a Config field that cannot work; the message names the field.
	ErrInvalidConfig = vocab.Sentinel(vocab.CodeInvalidArgument, "host: invalid configuration")
	// ErrNotStarted: a call before Start or after Stop.
	ErrNotStarted = vocab.Sentinel(vocab.CodeUnavailable, "host: not started")
)
