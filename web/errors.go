package web

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/services"
	"github.com/trellis-run/trellis/logstore"
)

// apiError is an error with the HTTP status and body code it answers with.
type apiError struct {
	Status  int
	Code    string
	Message string
	Details any
}

func (e *apiError) Error() string { return e.Message }

func errBadRequest(format string, a ...any) error {
	return &apiError{Status: http.StatusBadRequest, Code: "invalid_argument", Message: fmt.Sprintf(format, a...)}
}

func errNotFound(format string, a ...any) error {
	return &apiError{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf(format, a...)}
}

func errUnauthorized(msg string) error {
	return &apiError{Status: http.StatusUnauthorized, Code: "unauthorized", Message: msg}
}

func errBodyTooLarge(limit int64) error {
	return &apiError{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
		Message: fmt.Sprintf("request body is larger than the limit of %d bytes", limit)}
}

// toAPIError is the one place where errors of every layer become an HTTP status and code.
func toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return errBodyTooLarge(tooLarge.Limit).(*apiError)
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		code := map[int]string{404: "not_found", 405: "method_not_allowed", 413: "body_too_large", 401: "unauthorized"}[he.Code]
		if code == "" {
			code = "http_error"
		}
		return &apiError{Status: he.Code, Code: code, Message: fmt.Sprint(he.Message)}
	}
	var ve *registry.ValidationError
	if errors.As(err, &ve) {
		return &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_element", Message: err.Error(), Details: map[string]any{"problems": ve.Problems}}
	}
	var se *services.Error
	if errors.As(err, &se) {
		return &apiError{Status: statusOfCode(se.Code), Code: se.Code, Message: se.Message}
	}
	var je *jsvm.Error
	if errors.As(err, &je) {
		return &apiError{Status: statusOfCode(je.Code), Code: je.Code, Message: je.Message, Details: je}
	}
	switch {
	case errors.Is(err, logstore.ErrInvalidQuery):
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_argument", Message: err.Error()}
	case errors.Is(err, logstore.ErrUnavailable):
		return &apiError{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: err.Error()}
	case errors.Is(err, engine.ErrConflict):
		return &apiError{Status: http.StatusConflict, Code: "conflict", Message: err.Error()}
	case errors.Is(err, engine.ErrNotFound):
		return &apiError{Status: http.StatusNotFound, Code: "not_found", Message: err.Error()}
	case errors.Is(err, engine.ErrInvalidEvent):
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_argument", Message: err.Error()}
	case errors.Is(err, engine.ErrUnavailable):
		return &apiError{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: err.Error()}
	case errors.Is(err, host.ErrBadArgs):
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_argument", Message: err.Error()}
	case errors.Is(err, host.ErrNotFound):
		return &apiError{Status: http.StatusNotFound, Code: "not_found", Message: err.Error()}
	case errors.Is(err, host.ErrNotStarted), errors.Is(err, jsvm.ErrClosed):
		return &apiError{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: err.Error()}
	}
	// Errors of the task center and the model runtime carry their code (jsvm.CodedError).
	var coded jsvm.CodedError
	if errors.As(err, &coded) {
		return &apiError{Status: statusOfCode(coded.ErrorCode()), Code: coded.ErrorCode(), Message: err.Error()}
	}
	return &apiError{Status: http.StatusInternalServerError, Code: "internal", Message: err.Error()}
}

// statusOfCode maps the error codes services and the sandbox use.
func statusOfCode(code string) int {
	switch code {
	case services.CodeNotFound:
		return http.StatusNotFound
	case services.CodeInvalidArgument:
		return http.StatusBadRequest
	case services.CodeNotImplemented:
		return http.StatusNotImplemented
	case services.CodeConflict:
		return http.StatusConflict
	case jsvm.CodeUnavailable: // also services.CodeUnavailable
		return http.StatusServiceUnavailable
	default: // js_error, timeout, memory_limit, stack_overflow: the function ran and failed
		return http.StatusUnprocessableEntity
	}
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
	_ = c.JSON(ae.Status, map[string]any{"error": body})
}
