package models

import (
	"errors"

	"github.com/trellis-run/trellis/host/vocab"
)

// Sentinel errors every backend wraps, so the HTTP layer maps them to statuses in one place
// (ErrNotFound 404; ErrUnknownField, ErrInvalidValue 400; ErrSchema 409 or a load error;
// ErrUnavailable 503).
var (
	// ErrNotFound: no row has that id; it may have been deleted.
	ErrNotFound = vocab.Sentinel(vocab.CodeNotFound, "models: row not found")
	// ErrUnknownField: a row, filter or orderBy names a field the model does not declare;
	// the message names it.
	ErrUnknownField = errors.New("models: unknown field")
	// ErrInvalidValue: a value does not fit its field's type, or a query argument is out of
	// range; the message names the field, the type wanted and what was given.
	ErrInvalidValue = vocab.Sentinel(vocab.CodeInvalidArgument, "models: invalid value")
	// ErrSchema: a model declaration the storage cannot follow (bad field list, a field whose
	// type changed, a table not yet created); the message says what to do.
	ErrSchema = errors.New("models: schema problem")
	// ErrUnavailable: the database cannot be reached or the store is closed; try again later
	// or check the database.
	ErrUnavailable = vocab.Sentinel(vocab.CodeUnavailable, "models: database unavailable")
)
