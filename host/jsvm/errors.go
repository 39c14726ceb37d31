package jsvm

import (
	"errors"
	"fmt"
)

// Error codes an execution can end with. They are part of the public contract (CONTRACT §2, §6).
const (
	CodeJSError       = "js_error"       // the code threw, or a syntax error stopped it
	CodeTimeout       = "timeout"        // it ran past its deadline
	CodeMemoryLimit   = "memory_limit"   // it allocated past its memory cap
	CodeStackOverflow = "stack_overflow" // it recursed past the call-depth cap
	CodeNotFound      = "not_found"      // unknown element or function
	CodeInvalidArg    = "invalid_argument"
	CodeUnavailable   = "unavailable" // the executor is closed or its workers cannot start
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

// ErrorCode returns the error's code, so a *Error is a CodedError.
func (e *Error) ErrorCode() string { return e.Code }

// ErrClosed is returned by Execute after Close.
var ErrClosed = errors.New("jsvm: executor is closed")

// AsError returns err as an *Error, wrapping errors of other kinds as js_error (or their own
// code if they are CodedErrors).
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var c CodedError
	if errors.As(err, &c) {
		return &Error{Code: c.ErrorCode(), Message: err.Error()}
	}
	return &Error{Code: CodeJSError, Message: err.Error()}
}

// CodeCanceled ends an execution whose context was canceled before its deadline (a task that was
// force-ended, a host shutting down).
const CodeCanceled = "canceled"

// Sentinel errors of the package besides ErrClosed.
var (
	// ErrInvalidDatetime is wrapped by ParseDatetime when a value is no datetime form it accepts.
	ErrInvalidDatetime = errors.New("jsvm: invalid datetime")
	// ErrNoSource is wrapped when Execute runs before any successful Load.
	ErrNoSource = errors.New("jsvm: no source loaded")
)

// CodeInternal is the code a host error without a code of its own gets in JS.
const CodeInternal = "internal"
