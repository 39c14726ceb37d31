package localbus

import "errors"

// Sentinel errors of the package, wrapped with the operation and the detail. Errors of the
// bus contract wrap the bus package's sentinels (bus.ErrClosed, bus.ErrInvalid,
// bus.ErrUnavailable) as well.
var (
	// ErrInvalidOptions: an Options field is out of range, or the directory is unusable; the
	// message names it.
	ErrInvalidOptions = errors.New("localbus: invalid options")
	// ErrLocked: another process (or another Bus in this one) has the directory open. Give every
	// host its own data directory, or use redisbus to share a bus between hosts.
	ErrLocked = errors.New("localbus: directory in use")
	// ErrCorrupt: the log holds something other than a bus log written by this package, or a
	// record that passed its checksum but cannot be decoded. Nothing was changed on disk; move
	// the file aside to start afresh.
	ErrCorrupt = errors.New("localbus: corrupt log")
	// ErrIO: the log cannot be written or synced (disk full, I/O error). Messages of a Publish
	// that fails with it were not acknowledged; the bus refuses further writes until reopened.
	ErrIO = errors.New("localbus: log I/O failed")
	// ErrBacklogFull: unacknowledged messages use Options.MaxBacklogBytes already. Publish may
	// be retried once consumers catch up; it also wraps bus.ErrUnavailable.
	ErrBacklogFull = errors.New("localbus: backlog full")
)
