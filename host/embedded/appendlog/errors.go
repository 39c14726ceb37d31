package appendlog

import "errors"

// Sentinel errors of the package, wrapped with the operation and the detail. Owners wrap them
// in their own (a bus, a spool), so their callers see one vocabulary.
var (
	// ErrInvalidOptions: an Options field is missing or out of range; the message names it.
	ErrInvalidOptions = errors.New("appendlog: invalid options")
	// ErrLocked: another Log (in this or another process) has the directory open.
	ErrLocked = errors.New("appendlog: directory in use")
	// ErrIO: the directory or a segment cannot be read or written (permissions, disk full, I/O
	// error). Records of a commit that fails with it were not made durable.
	ErrIO = errors.New("appendlog: I/O failed")
	// ErrCorrupt: bytes that should hold records do not check out: a segment that does not
	// start with the owner's magic, or committed data failing its checksum (a failing disk).
	ErrCorrupt = errors.New("appendlog: corrupt data")
	// ErrClosed: the Log was closed (or killed) before the records were committed.
	ErrClosed = errors.New("appendlog: closed")
	// ErrInvalidFrames: Append or Rewrite was given bytes that are not whole frames built
	// with AppendFrame or BeginFrame/FinishFrame: a bug of the owner.
	ErrInvalidFrames = errors.New("appendlog: not whole frames")
)
