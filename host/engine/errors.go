package engine

import "github.com/trellis-run/trellis/host/vocab"

// Sentinel errors of the engine; each carries its code (vocab), which JS sees as .code and web maps to a status.
var (
	// ErrInvalidEvent: a sendEvent argument that cannot be delivered (kwargs not an object,
	// too large, an empty sender); the message says which.
	ErrInvalidEvent = vocab.Sentinel(vocab.CodeInvalidArgument, "engine: invalid event")
	// ErrUnavailable: the bus refused the event; nothing was sent and the caller may retry.
	ErrUnavailable = vocab.Sentinel(vocab.CodeUnavailable, "engine: event bus unavailable")
	// ErrNotStarted: the engine is not running.
	ErrNotStarted = vocab.Sentinel(vocab.CodeUnavailable, "engine: not started")
	// ErrNotFound: an unknown node.
	ErrNotFound = vocab.Sentinel(vocab.CodeNotFound, "engine: not found")
)
