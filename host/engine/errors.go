package engine

import "errors"

// Sentinel errors of the engine; the host maps them to service error codes and HTTP statuses.
var (
	// ErrInvalidEvent: a sendEvent argument that cannot be delivered (kwargs not an object,
	// too large, an empty sender); the message says which.
	ErrInvalidEvent = errors.New("engine: invalid event")
	// ErrUnavailable: the bus refused the event; nothing was sent and the caller may retry.
	ErrUnavailable = errors.New("engine: event bus unavailable")
	// ErrNotStarted: the engine is not running.
	ErrNotStarted = errors.New("engine: not started")
	// ErrNotFound: an unknown node.
	ErrNotFound = errors.New("engine: not found")
)
