package modelrt

import (
	"context"
	"errors"
	"fmt"

	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/models"
	"github.com/trellis-run/trellis/host/vocab"
)

// Sentinel errors of the package. Errors of the models package (models.ErrNotFound,
// ErrInvalidValue, ErrUnknownField, ErrSchema, ErrUnavailable) are passed through wrapped, so
// errors.Is finds them too.
var (
	// ErrUnknownModel: the name is not a model instance of the current app version (a typo, a
	// model not yet saved, or a Type rather than an instance).
	ErrUnknownModel = errors.New("modelrt: unknown model")
	// ErrUnknownMethod: a model's runtime object has only the methods listed in Methods.
	ErrUnknownMethod = errors.New("modelrt: unknown method")
	// ErrInvalidArgument: the arguments of a call have the wrong shape (a patch that is not an
	// object, an id that is not a whole number, too many arguments); the message says what the
	// method takes.
	ErrInvalidArgument = errors.New("modelrt: invalid argument")
	// ErrLifecycle: a lifecycle function of the model's index.js threw, or beforeSave returned
	// something that is not a row. Before the store call it means nothing was stored.
	ErrLifecycle = errors.New("modelrt: lifecycle function failed")
	// ErrAfterWrite: the row was written, but a step after the write (afterSave, afterDelete,
	// the model event, the date-field tasks) failed. The write is not undone; the message says
	// which step failed so the caller can repeat just that.
	ErrAfterWrite = errors.New("modelrt: the row was written but a step after it failed")
)

// Codes of the errors this package returns, as JavaScript sees them in `.code` (they are the
// sandbox's codes, so every layer speaks the same words).
const (
	CodeNotFound        = vocab.CodeNotFound        // unknown model, method or row
	CodeInvalidArgument = vocab.CodeInvalidArgument // wrong argument shape, value, or field
	CodeUnavailable     = vocab.CodeUnavailable
	CodeJSError         = vocab.CodeJSError // a lifecycle function failed
	// CodeConflict: the model's declaration does not fit its table (a field whose type changed);
	// the message says what to do.
	CodeConflict = vocab.CodeConflict
	// CodeInternal: anything else.
	CodeInternal = vocab.CodeInternal
)

// Error is every error the Runtime returns: the wrapped cause with its code, so the sandbox
// throws it into JavaScript with `.code` and the HTTP layer picks a status from the code.
type Error struct {
	// Code is one of the Code constants (or, for a lifecycle function that ran out of time or
	// memory, the sandbox's own code: timeout, memory_limit, stack_overflow).
	Code string
	err  error
}

var _ vocab.CodedError = (*Error)(nil)

// Error returns the message of the cause, which names the model and says what to do.
func (e *Error) Error() string { return e.err.Error() }

// Unwrap gives errors.Is and errors.As the cause: the sentinels of this package and of models.
func (e *Error) Unwrap() error { return e.err }

// ErrorCode returns the code, so *Error is a vocab.CodedError.
func (e *Error) ErrorCode() string { return e.Code }

// coded gives err its code; nil stays nil and an *Error is returned as it is.
func coded(err error) error {
	if err == nil {
		return nil
	}
	if e, ok := err.(*Error); ok {
		return e
	}
	return &Error{Code: codeOf(err), err: err}
}

// codeOf picks the code from the sentinels in err's chain; the first match in this order wins,
// so a lifecycle failure reported after a write is still js_error.
func codeOf(err error) string {
	switch {
	case errors.Is(err, ErrLifecycle):
		return lifecycleCode(err)
	case errors.Is(err, ErrUnknownModel), errors.Is(err, ErrUnknownMethod), errors.Is(err, models.ErrNotFound):
		return CodeNotFound
	case errors.Is(err, ErrInvalidArgument), errors.Is(err, models.ErrInvalidValue), errors.Is(err, models.ErrUnknownField):
		return CodeInvalidArgument
	case errors.Is(err, models.ErrUnavailable):
		return CodeUnavailable
	case errors.Is(err, models.ErrSchema):
		return CodeConflict
	case errors.Is(err, context.DeadlineExceeded):
		return vocab.CodeTimeout
	case errors.Is(err, context.Canceled):
		return vocab.CodeCanceled
	}
	var c vocab.CodedError
	if errors.As(err, &c) {
		return c.ErrorCode()
	}
	if errors.Is(err, ErrAfterWrite) {
		// Emit and DateFields fail when the bus or the timers cannot be reached.
		return CodeUnavailable
	}
	return CodeInternal
}

// limitCodes are sandbox codes that say more than js_error about why a lifecycle function
// failed; they are kept.
var limitCodes = map[string]bool{
	vocab.CodeTimeout: true, vocab.CodeMemoryLimit: true, vocab.CodeStackOverflow: true,
	vocab.CodeCanceled: true, vocab.CodeUnavailable: true,
}

func lifecycleCode(err error) string {
	var je *jsvm.Error
	if errors.As(err, &je) {
		if limitCodes[je.Code] {
			return je.Code
		}
		return CodeJSError
	}
	if errors.Is(err, jsvm.ErrClosed) {
		return CodeUnavailable
	}
	return CodeJSError
}

// lifecycleError wraps the failure of fn of model. A *jsvm.Error inside is copied with the code
// JavaScript should see and, when note is set, the note added to its message: the sandbox
// shows JavaScript the message of the innermost *jsvm.Error, so that is where "the row was
// saved" must be written.
func lifecycleError(model, fn string, err error, note string) error {
	var je *jsvm.Error
	if errors.As(err, &je) {
		c := *je
		c.Code = lifecycleCode(err)
		if note != "" {
			c.Message = fmt.Sprintf("%s of %s failed: %s (%s)", fn, model, je.Message, note)
		}
		return fmt.Errorf("%w: %s of %s: %w", ErrLifecycle, fn, model, &c)
	}
	if note != "" {
		return fmt.Errorf("%w: %s of %s: %w (%s)", ErrLifecycle, fn, model, err, note)
	}
	return fmt.Errorf("%w: %s of %s: %w", ErrLifecycle, fn, model, err)
}

// invalidArg is an ErrInvalidArgument with a message saying what the method takes.
func invalidArg(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, a...))
}
