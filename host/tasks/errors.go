package tasks

import (
	"fmt"

	"github.com/trellis-run/trellis/host/vocab"
)

// Sentinel errors. Each carries the code JS and HTTP see; the task store's own sentinels
// (timers.ErrNotFound, …) carry theirs, so errors passed up from it keep a code too.
var (
	// ErrInvalidArgument is a call with a wrong argument: a bad start time, an argDict that is not
	// an object, a taskType that does not fit the template.
	ErrInvalidArgument = vocab.Sentinel(vocab.CodeInvalidArgument, "tasks: invalid argument")
	// ErrNotFound is an unknown template, function or task.
	ErrNotFound = vocab.Sentinel(vocab.CodeNotFound, "tasks: not found")
	// ErrConflict is an operation the task's state does not allow (forcedEnd of a finished task).
	ErrConflict = vocab.Sentinel(vocab.CodeConflict, "tasks: conflict")
	// ErrUnavailable is a task store that cannot be reached.
	ErrUnavailable = vocab.Sentinel(vocab.CodeUnavailable, "tasks: unavailable")
)

func fail(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)
}
