package vocab

import (
	"errors"
	"fmt"
)

// Error codes: what JS sees as a thrown Error's `.code` and HTTP as the error body's `code`
// (docs/reference.md §2 and §6). web maps each to one HTTP status.
const (
	// Codes of a call that could not be made as asked.
	CodeInvalidArgument = "invalid_argument" // an argument of the wrong type, shape or value
	CodeNotFound        = "not_found"        // an unknown element, function, node, request or task
	CodeConflict        = "conflict"         // an operation the current state does not allow
	CodeUnavailable     = "unavailable"      // a backend that is down or a part not running
	CodeNotImplemented  = "not_implemented"  // a method no code serves yet
	CodeInvalidElement  = "invalid_element"  // an element that fails validation
	CodeUnauthorized    = "unauthorized"     // a missing or wrong bearer token
	CodeBodyTooLarge    = "body_too_large"   // a request body over the limit
	CodeInternal        = "internal"         // a fault of Trellis itself

	// Codes of a function that ran and failed.
	CodeJSError        = "js_error"         // the code threw, or a syntax error stopped it
	CodeFailed         = "failed"           // the handler called ctx.fail(reason): a failure, not a throw
	CodeTimeout        = "timeout"          // it ran past its deadline
	CodeMemoryLimit    = "memory_limit"     // it allocated past its memory cap
	CodeStackOverflow  = "stack_overflow"   // it recursed past the call-depth cap
	CodeResultTooLarge = "result_too_large" // its result was larger than the result cap
	CodeCanceled       = "canceled"         // its context ended first (forcedEnd, host shutting down)
)

// CodedError is an error that carries one of the codes above. Every layer returns coded errors,
// so the sandbox can give JS the code and web can answer with the status, without either
// knowing which layer the error came from.
type CodedError interface {
	error
	ErrorCode() string
}

// CodeOf returns the code of the first coded error in err's chain, or "" when none has one.
func CodeOf(err error) string {
	var c CodedError
	if errors.As(err, &c) {
		return c.ErrorCode()
	}
	return ""
}

// Sentinel makes a package's sentinel error that carries a code: errors.Is matches it through
// any wrapping (fmt.Errorf("%w: …", ErrNotFound)), and CodeOf reads its code from the wrapper.
func Sentinel(code, message string) error { return &sentinel{code: code, msg: message} }

type sentinel struct{ code, msg string }

func (s *sentinel) Error() string     { return s.msg }
func (s *sentinel) ErrorCode() string { return s.code }

// Errorf is fmt.Errorf with a code: the result is a CodedError and keeps what %w wraps.
func Errorf(code, format string, a ...any) error {
	return &codedError{code: code, err: fmt.Errorf(format, a...)}
}

// WithCode gives err a code, unless it has one already; nil stays nil.
func WithCode(code string, err error) error {
	if err == nil || CodeOf(err) != "" {
		return err
	}
	return &codedError{code: code, err: err}
}

type codedError struct {
	code string
	err  error
}

func (e *codedError) Error() string     { return e.err.Error() }
func (e *codedError) Unwrap() error     { return e.err }
func (e *codedError) ErrorCode() string { return e.code }
