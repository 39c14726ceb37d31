package jsvm

import (
	"context"
	"errors"
	"fmt"

	"github.com/trellis-run/trellis/host/vocab"
)

// Error codes an execution can end with (docs/reference.md §2, §6): the shared vocabulary's,
// named here too because the sandbox's own code uses them on every path.
const (
	CodeJSError       = vocab.CodeJSError
	CodeTimeout       = vocab.CodeTimeout
	CodeMemoryLimit   = vocab.CodeMemoryLimit
	CodeStackOverflow = vocab.CodeStackOverflow
	// CodeResultTooLarge ends an execution whose result is over Limits.MaxResultBytes.
	CodeResultTooLarge = vocab.CodeResultTooLarge
	CodeNotFound       = vocab.CodeNotFound
	CodeInvalidArg     = vocab.CodeInvalidArgument
	CodeUnavailable    = vocab.CodeUnavailable // the executor is closed or its workers cannot start
	CodeCanceled       = vocab.CodeCanceled
	CodeInternal       = vocab.CodeInternal // a host error without a code of its own
)

// Error is how a failed execution is reported. Stack holds JS frames as "file:line:col"
// lines, with files named by their path in the app ("services/BackupSvc/index.js").
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Stack   string `json:"stack,omitempty"`
	// Element, File, Line and Column point at where it went wrong, when known.
	Element string `json:"element,omitempty"`
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	// Details carries extra data a thrown JS error had (its own fields) or a host error gave.
	Details map[string]any `json:"details,omitempty"`

	// cause is a sentinel of this package the error stands for (ErrNoSource), for errors.Is.
	cause error
	// missingFunction marks the not_found of a function lookup (not of an element).
	missingFunction bool
}

// Unwrap returns the package sentinel behind e, if any, so errors.Is(err, ErrNoSource) works.
func (e *Error) Unwrap() error { return e.cause }

func (e *Error) Error() string {
	where := e.Element
	if e.File != "" {
		where = e.File
		if e.Line > 0 {
			where = fmt.Sprintf("%s:%d:%d", e.File, e.Line, e.Column)
		}
	}
	if where != "" {
		return fmt.Sprintf("jsvm: %s: %s (%s)", e.Code, e.Message, where)
	}
	return fmt.Sprintf("jsvm: %s: %s", e.Code, e.Message)
}

// ErrorCode returns the error's code, so a *Error is a vocab.CodedError.
func (e *Error) ErrorCode() string { return e.Code }

// ErrorDetails is what an HTTP error body's details carry for a failed execution: the error
// itself, with its stack and position.
func (e *Error) ErrorDetails() any { return e }

// ErrorMessage is the message without the code and position Error adds: what an HTTP error
// body's message says, beside the code and details that carry the rest.
func (e *Error) ErrorMessage() string { return e.Message }

// ErrClosed is returned by Execute after Close.
var ErrClosed = vocab.Sentinel(vocab.CodeUnavailable, "jsvm: executor is closed")

// AsError returns err as an *Error, wrapping errors of other kinds as js_error (or their own
// code if they are CodedErrors; timeout or canceled for a context's deadline or cancel, which
// is what ended the work, not a failure of the code).
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var c CodedError
	switch {
	case errors.As(err, &c):
		return &Error{Code: c.ErrorCode(), Message: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: CodeTimeout, Message: err.Error()}
	case errors.Is(err, context.Canceled):
		return &Error{Code: CodeCanceled, Message: err.Error()}
	}
	return &Error{Code: CodeJSError, Message: err.Error()}
}

// Sentinel errors of the package besides ErrClosed.
var (
	// ErrNoSource is wrapped when Execute runs before any successful Load.
	ErrNoSource = errors.New("jsvm: no source loaded")
)
