package web

import (
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/trellis-run/trellis/host/vocab"
)

func (s *Server) routeNodes(e *echo.Echo) {
	e.POST("/api/nodes/:nodeId/:op", s.nodeOp)
	e.POST("/api/requests/:requestId/:op", s.requestOp)
}

// nodeOps are the node operations of docs/reference.md §6; those not served yet say so.
var nodeOps = map[string]bool{"pause": true, "resume": true, "retry": true, "skip": true, "forcedFail": true, "callback": true, "resend": true, "replay": true}

func (s *Server) nodeOp(c echo.Context) error {
	node, err := idParam(c, "nodeId")
	if err != nil {
		return err
	}
	op := c.Param("op")
	if !nodeOps[op] {
		return errNotFound("no node operation %q: use pause, resume, retry, skip, forcedFail, callback, resend or replay", op)
	}
	if op == "replay" {
		return s.replayNode(c, node)
	}
	if op == "resend" {
		res, err := s.deps.Events.Resend(c.Request().Context(), node)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, res)
	}
	if op != "callback" {
		return errNotImplemented("node operation %s is not available in this version of Trellis", op)
	}
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return err
	}
	var data any
	if len(body) > 0 {
		if data, err = vocab.DecodeJSON(body); err != nil {
			return errBadRequest("callback data is not valid JSON: %v", err)
		}
	}
	res, err := s.deps.Events.Callback(c.Request().Context(), node, data)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

var requestOps = map[string]bool{"pause": true, "resume": true, "revoke": true}

func (s *Server) requestOp(c echo.Context) error {
	if _, err := idParam(c, "requestId"); err != nil {
		return err
	}
	if op := c.Param("op"); !requestOps[op] {
		return errNotFound("no request operation %q: use pause, resume or revoke", op)
	}
	return errNotImplemented("request operation %s is not available in this version of Trellis", c.Param("op"))
}

func errNotImplemented(format string, a ...any) error {
	return vocab.Errorf(vocab.CodeNotImplemented, format, a...)
}
