package web

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/trellis-run/trellis/host/jsvm"
)

func (s *Server) routeServices(e *echo.Echo) {
	e.POST("/api/services/:fullName/:function", s.callService)
}

// callService runs a service function: a JSON object body is its one argument, a JSON array
// body its positional arguments, an empty body no arguments.
func (s *Server) callService(c echo.Context) error {
	name, err := fullNameParam(c, "fullName")
	if err != nil {
		return err
	}
	fn := c.Param("function")
	if !functionNamePattern.MatchString(fn) || len(fn) > maxFunctionName {
		return errBadRequest("%q is not a function name", fn)
	}
	args, err := readArgs(c)
	if err != nil {
		return err
	}
	res, err := s.deps.Calls.CallService(c.Request().Context(), name, fn, args)
	if err != nil {
		ae := toAPIError(err)
		if je, ok := ae.Details.(*jsvm.Error); ok {
			ae.Details = map[string]any{"stack": je.Stack, "element": je.Element, "file": je.File,
				"line": je.Line, "column": je.Column, "logs": logsOrEmpty(res.Logs), "data": je.Details}
		}
		return ae
	}
	return c.JSON(http.StatusOK, map[string]any{"result": res.Value, "logs": logsOrEmpty(res.Logs)})
}

func logsOrEmpty(l []jsvm.LogEntry) []jsvm.LogEntry {
	if l == nil {
		return []jsvm.LogEntry{}
	}
	return l
}
