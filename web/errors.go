package web

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/trellis-run/trellis/host/vocab"
)

// apiError is an error with the HTTP status and body code it answers with.
type apiError struct {
	Status  int
	Code    string
	Message string
	Details any
}

func (e *apiError) Error() string     { return e.Message }
func (e *apiError) ErrorCode() string { return e.Code }

func errBadRequest(format string, a ...any) error {
	return vocab.Errorf(vocab.CodeInvalidArgument, format, a...)
}

func errNotFound(format string, a ...any) error {
	return vocab.Errorf(vocab.CodeNotFound, format, a...)
}

func errUnauthorized(msg string) error {
	return vocab.Errorf(vocab.CodeUnauthorized, "%s", msg)
}

func errBodyTooLarge(limit int64) error {
	return vocab.Errorf(vocab.CodeBodyTooLarge, "request body is larger than the limit of %d bytes", limit)
}

func errUnavailable(format string, a ...any) error {
	return vocab.Errorf(vocab.CodeUnavailable, format, a...)
}

// statusOfCode is the one table from error code to HTTP status (docs/reference.md §6). Every
// layer returns coded errors (host/vocab), so no layer's sentinels are named here.
var statusOfCode = map[string]int{
	vocab.CodeInvalidArgument: http.StatusBadRequest,
	vocab.CodeUnauthorized:    http.StatusUnauthorized,
	codeForbidden:             http.StatusForbidden, // a cookie-authenticated change from another origin
	vocab.CodeNotFound:        http.StatusNotFound,
	"method_not_allowed":      http.StatusMethodNotAllowed,
	vocab.CodeConflict:        http.StatusConflict,
	vocab.CodeBodyTooLarge:    http.StatusRequestEntityTooLarge,
	// An element that fails validation, and a function that ran and failed.
	vocab.CodeInvalidElement: http.StatusUnprocessableEntity,
	vocab.CodeJSError:        http.StatusUnprocessableEntity,
	vocab.CodeFailed:         http.StatusUnprocessableEntity,
	vocab.CodeTimeout:        http.StatusUnprocessableEntity,
	vocab.CodeMemoryLimit:    http.StatusUnprocessableEntity,
	vocab.CodeStackOverflow:  http.StatusUnprocessableEntity,
	vocab.CodeResultTooLarge: http.StatusUnprocessableEntity,
	vocab.CodeCanceled:       http.StatusUnprocessableEntity,
	vocab.CodeNotImplemented: http.StatusNotImplemented,
	vocab.CodeUnavailable:    http.StatusServiceUnavailable,
	vocab.CodeInternal:       http.StatusInternalServerError,
}

// toAPIError is the one place where errors of every layer become an HTTP status and code: by
// the error's code, with the details it offers (a failed execution's stack and logs, a
// validation's problems).
func toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		err = errBodyTooLarge(tooLarge.Limit)
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		code := map[int]string{404: vocab.CodeNotFound, 405: "method_not_allowed", 413: vocab.CodeBodyTooLarge, 401: vocab.CodeUnauthorized}[he.Code]
		if code == "" {
			code = "http_error"
		}
		return &apiError{Status: he.Code, Code: code, Message: fmt.Sprint(he.Message)}
	}
	code := vocab.CodeOf(err)
	status, ok := statusOfCode[code]
	if !ok {
		// A code this table does not know is a failure of the function that ran (a JS error
		// may carry any code its author gave it); no code at all is a fault of Trellis.
		status = http.StatusUnprocessableEntity
		if code == "" {
			status, code = http.StatusInternalServerError, vocab.CodeInternal
		}
	}
	out := &apiError{Status: status, Code: code, Message: err.Error()}
	var d interface{ ErrorDetails() any }
	if errors.As(err, &d) {
		out.Details = d.ErrorDetails()
		if je, ok := d.(interface{ ErrorMessage() string }); ok {
			out.Message = je.ErrorMessage()
		}
	}
	return out
}

// writeError is echo's error handler: every error answers {"error": {code, message, details}}.
func writeError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	ae := toAPIError(err)
	body := map[string]any{"code": ae.Code, "message": ae.Message}
	if ae.Details != nil {
		body["details"] = ae.Details
	}
	if err := c.JSON(ae.Status, map[string]any{"error": body}); err != nil && !c.Response().Committed {
		// Details that cannot be written as JSON must not cost the answer its status and
		// body (echo would leave an empty 200): answer without them, and say so.
		delete(body, "details")
		body["message"] = ae.Message + " (details left out: " + err.Error() + ")"
		_ = c.JSON(ae.Status, map[string]any{"error": body})
	}
}
