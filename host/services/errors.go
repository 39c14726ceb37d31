package services

import (
	"errors"
	"fmt"
)

// Error codes of service calls; they reach JS as the thrown Error's `.code` and HTTP as the
// error body's code.
const (
	CodeInvalidArgument = "invalid_argument"
	CodeNotFound        = "not_found"
	CodeNotImplemented  = "not_implemented"
)

// Error is a failed service call with a machine-readable code. It satisfies jsvm.CodedError.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// ErrorCode returns the code of the error.
func (e *Error) ErrorCode() string { return e.Code }

// ErrNotImplemented is matched by errors.Is for calls to methods no Go code serves yet.
var ErrNotImplemented = errors.New("services: method not implemented")

// Is lets errors.Is(err, ErrNotImplemented) match a not_implemented Error.
func (e *Error) Is(target error) bool {
	return target == ErrNotImplemented && e.Code == CodeNotImplemented
}

func invalidArg(method, format string, a ...any) *Error {
	return &Error{Code: CodeInvalidArgument, Message: fmt.Sprintf("services: %s: ", method) + fmt.Sprintf(format, a...)}
}
