package writer

import "errors"

// Sentinel errors of the package, wrapped with the operation and the detail.
var (
	// ErrInvalidOptions: an Options field is out of range; the message names it.
	ErrInvalidOptions = errors.New("writer: invalid options")
	// ErrNotStarted: Write or Flush before Start. Call Start first.
	ErrNotStarted = errors.New("writer: not started")
	// ErrStopped: Write, Flush or Start after Stop. Rows already acknowledged stay in the spool
	// and are delivered by the next Writer started on the same SpoolDir.
	ErrStopped = errors.New("writer: stopped")
	// ErrSpoolLocked: another Writer (in this or another process) holds SpoolDir. Give every
	// process its own SpoolDir.
	ErrSpoolLocked = errors.New("writer: spool directory in use")
	// ErrSpool: the spool directory cannot be read or written (permissions, disk full, I/O
	// error). Rows of a Write that fails with it were not acknowledged.
	ErrSpool = errors.New("writer: spool I/O failed")
	// ErrNotDrained: Stop's context ended before every spooled row was inserted. Nothing is
	// lost: the rest stays in the spool for the next Start.
	ErrNotDrained = errors.New("writer: spool not drained")
)
