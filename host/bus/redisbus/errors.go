package redisbus

import "errors"

// Sentinel errors of the package. Errors of the bus contract wrap the bus package's sentinels
// (bus.ErrClosed, bus.ErrInvalid, bus.ErrUnavailable) instead.
var (
	// ErrInvalidOptions: an Options field is out of range or the Redis URL cannot be parsed; the
	// message names it.
	ErrInvalidOptions = errors.New("redisbus: invalid options")
)
