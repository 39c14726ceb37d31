package web

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/trellis-run/trellis/host/engine"
)

func (s *Server) routeSend(e *echo.Echo) {
	e.POST("/api/events/send", s.sendEvent)
}

// sendEvent is sendEvent over HTTP: {sender, kwargs, eventType}.
func (s *Server) sendEvent(c echo.Context) error {
	m, err := readObject(c, "sender", "kwargs", "eventType")
	if err != nil {
		return err
	}
	sender, ok := m["sender"].(string)
	if !ok || sender == "" {
		return errBadRequest("sender must be a non-empty string")
	}
	eventType, ok := m["eventType"].(string)
	if _, present := m["eventType"]; present && !ok {
		return errBadRequest("eventType must be a string")
	}
	res, err := s.deps.Events.SendEvent(c.Request().Context(), engine.SendRequest{Sender: sender, Kwargs: m["kwargs"], EventType: eventType})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res.Map())
}
