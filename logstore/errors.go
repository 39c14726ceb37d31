package logstore

import "errors"

// Sentinel errors every backend wraps, so the HTTP layer can map them in one place.
var (
	// ErrInvalidQuery: a query argument out of range or unparseable; the message names it.
	ErrInvalidQuery = errors.New("logstore: invalid query")
	// ErrInvalidRow: a row missing what every row must have; the message names the field.
	ErrInvalidRow = errors.New("logstore: invalid row")
	// ErrUnavailable: the backend cannot be reached or refused the schema.
	ErrUnavailable = errors.New("logstore: backend unavailable")
)
