package logstore

import "github.com/trellis-run/trellis/host/vocab"

// Sentinel errors every backend wraps, so the HTTP layer can map them in one place.
var (
	// ErrInvalidQuery: a query argument out of range or unparseable; the message names it.
	ErrInvalidQuery = vocab.Sentinel(vocab.CodeInvalidArgument, "logstore: invalid query")
	// ErrInvalidRow: a row missing what every row must have; the message names the field.
	ErrInvalidRow = vocab.Sentinel(vocab.CodeInvalidArgument, "logstore: invalid row")
	// ErrUnavailable: the backend cannot be reached or refused the schema.
	ErrUnavailable = vocab.Sentinel(vocab.CodeUnavailable, "logstore: backend unavailable")
)
