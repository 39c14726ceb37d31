package isolate

import "errors"

// Sentinel errors of the package. Execution failures are reported as *jsvm.Error with a code; these
// are for the pool itself and are wrapped with detail (the worker's stderr, the field at fault).
var (
	// ErrInvalidOptions is returned by New when an Options field is out of range.
	ErrInvalidOptions = errors.New("isolate: invalid options")
	// ErrWorkerStart means a worker process could not be started or did not complete its
	// handshake; the wrapped message carries the command and the tail of its stderr.
	ErrWorkerStart = errors.New("isolate: worker process did not start")
	// ErrNilSource is returned by Load when it is given no Source.
	ErrNilSource = errors.New("isolate: Load needs a Source; got nil")
	// ErrProtocol means a worker sent something the supervisor did not expect; the worker is
	// killed and replaced.
	ErrProtocol = errors.New("isolate: worker protocol error")
)
