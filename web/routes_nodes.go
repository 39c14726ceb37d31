package web

import (
	"bytes"
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
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return err
	}
	var data any
	if len(bytes.TrimSpace(body)) > 0 {
		if data, err = vocab.DecodeJSON(body); err != nil {
			return errBadRequest("%s data is not valid JSON: %v", op, err)
		}
	}
	if op != "callback" {
		return s.otherNodeOp(c, op, node, data)
	}
	res, err := s.deps.Events.Callback(c.Request().Context(), node, data)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

var requestOps = map[string]bool{"pause": true, "resume": true, "revoke": true}

func (s *Server) requestOp(c echo.Context) error {
	req, err := idParam(c, "requestId")
	if err != nil {
		return err
	}
	op := c.Param("op")
	if !requestOps[op] {
		return errNotFound("no request operation %q: use pause, resume or revoke", op)
	}
	res, err := s.deps.Events.RequestOp(c.Request().Context(), op, req)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

// otherNodeOp serves pause, resume, retry, skip and forcedFail. The body is optional: retry's
// is the node's new kwargs (an object), forcedFail's its reason (a string, or {"reason": …});
// the others take none ({} counts as none).
func (s *Server) otherNodeOp(c echo.Context, op, node string, data any) error {
	switch op {
	case "retry":
		if _, ok := data.(map[string]any); data != nil && !ok {
			return errBadRequest("retry data must be a JSON object (the node's new kwargs)")
		}
	case "forcedFail":
		if m, ok := data.(map[string]any); ok {
			data = m["reason"]
		}
		if _, ok := data.(string); data != nil && !ok {
			return errBadRequest(`forcedFail data must be a string or {"reason": "..."}`)
		}
	default:
		if m, ok := data.(map[string]any); ok && len(m) == 0 {
			data = nil
		}
		if data != nil {
			return errBadRequest("%s takes no body", op)
		}
	}
	res, err := s.deps.Events.NodeOp(c.Request().Context(), op, node, data)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}
