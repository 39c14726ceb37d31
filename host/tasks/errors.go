package tasks

import (
	"errors"
	"fmt"

	"github.com/trellis-run/trellis/host/timers"
)

// Sentinel errors. Each carries the code JS and HTTP see (see codedError).
var (
	// ErrInvalidArgument is a call with a wrong argument: a bad start time, an argDict that is not
	// an object, a taskType that does not fit the template.
	ErrInvalidArgument = errors.New("tasks: invalid argument")
	// ErrNotFound is an unknown template, function or task.
	ErrNotFound = errors.New("tasks: not found")
	// ErrConflict is an operation the task's state does not allow (forcedEnd of a finished task).
	ErrConflict = errors.New("tasks: conflict")
	// ErrUnavailable is a task store that cannot be reached.
	ErrUnavailable = errors.New("tasks: unavailable")
)

// codedError gives an error the code jsvm throws into JS and web maps to a status.
type codedError struct {
	code string
	err  error
}

func (e *codedError) Error() string     { return e.err.Error() }
func (e *codedError) Unwrap() error     { return e.err }
func (e *codedError) ErrorCode() string { return e.code }

func fail(sentinel error, format string, args ...any) error {
	return coded(fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...))
}

// coded wraps err with the code of the sentinel it carries, mapping the store's errors too.
func coded(err error) error {
	if err == nil {
		return nil
	}
	var ce *codedError
	if errors.As(err, &ce) {
		return err
	}
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, timers.ErrNotFound):
		return &codedError{"not_found", err}
	case errors.Is(err, ErrConflict), errors.Is(err, timers.ErrConflict):
		return &codedError{"conflict", err}
	case errors.Is(err, ErrInvalidArgument), errors.Is(err, timers.ErrInvalid):
		return &codedError{"invalid_argument", err}
	case errors.Is(err, ErrUnavailable), errors.Is(err, timers.ErrUnavailable):
		return &codedError{"unavailable", err}
	}
	return err
}
