package localstore

import "errors"

// Sentinel errors of the embedded store; each is also wrapped with a logstore sentinel where one
// applies, so callers may test for either.
var (
	// ErrClosed: the store was closed; open it again to use it.
	ErrClosed = errors.New("localstore: store is closed")
	// ErrSchemaVersion: the database was written by a newer Trellis; upgrade Trellis or point
	// it at another data directory.
	ErrSchemaVersion = errors.New("localstore: database schema is newer than this build")
	// ErrInvalidOptions: an Options field out of range; the message names it.
	ErrInvalidOptions = errors.New("localstore: invalid options")
)
