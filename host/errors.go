package host

import "errors"

// Sentinel errors of the host; the HTTP layer maps them to statuses in one place.
var (
	// ErrNotFound: an unknown element or function.
	ErrNotFound = errors.New("host: not found")
	// ErrInvalidConfig: a Config field that cannot work; the message names the field.
	ErrInvalidConfig = errors.New("host: invalid configuration")
	// ErrNotStarted: a call before Start or after Stop.
	ErrNotStarted = errors.New("host: not started")
)
