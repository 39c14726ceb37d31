package timers

import (
	"errors"

	"github.com/trellis-run/trellis/host/vocab"
)

// Sentinel errors every backend wraps, so the host and the HTTP layer can map them in one place.
var (
	// ErrNotFound: no task has this id (it never existed, or a Key replacement deleted it).
	ErrNotFound = vocab.Sentinel(vocab.CodeNotFound, "timers: task not found")
	// ErrConflict: the task is not in a status that allows the operation (force-ending a finished
	// task, finishing a task force-ended or taken over meanwhile, creating an id twice); the
	// message says the status.
	ErrConflict = vocab.Sentinel(vocab.CodeConflict, "timers: task status conflict")
	// ErrInvalid: a task, query or argument is malformed; the message names the field.
	ErrInvalid = vocab.Sentinel(vocab.CodeInvalidArgument, "timers: invalid argument")
	// ErrUnavailable: the backend cannot be reached (Redis down, database file unreadable) or the
	// store was closed; retry later or check the backend.
	ErrUnavailable = vocab.Sentinel(vocab.CodeUnavailable, "timers: backend unavailable")
	// ErrClosed: the store was closed; it is also ErrUnavailable. Open a new one.
	ErrClosed = errors.New("timers: store is closed")
)
