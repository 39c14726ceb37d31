package sqlitedb

import "errors"

// Sentinel errors of the package, wrapped with the path and the detail. Callers wrap them in
// their own (ErrUnavailable of their domain), so their callers see one vocabulary.
var (
	// ErrInvalidOptions: the path or an Options field is unusable; the message names it.
	ErrInvalidOptions = errors.New("sqlitedb: invalid options")
	// ErrUnavailable: the database cannot be opened or set up: the directory cannot be
	// created, the file is not an SQLite database, or another program holds it.
	ErrUnavailable = errors.New("sqlitedb: database unavailable")
)
