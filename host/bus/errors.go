package bus

import "errors"

// Sentinel errors every backend wraps.
var (
	// ErrClosed: the bus or subscription is closed.
	ErrClosed = errors.New("bus: closed")
	// ErrUnavailable: the broker cannot be reached; the operation may be retried.
	ErrUnavailable = errors.New("bus: broker unavailable")
	// ErrInvalid: a bad topic, group or option; the message names it.
	ErrInvalid = errors.New("bus: invalid argument")
)
