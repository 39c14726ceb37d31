package localtimers

import "errors"

// ErrSchemaVersion: the database was written by a newer Trellis; upgrade Trellis or point it at
// another data directory. It is also timers.ErrUnavailable.
var ErrSchemaVersion = errors.New("localtimers: database schema is newer than this build")
