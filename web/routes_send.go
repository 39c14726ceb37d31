package web

import (
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/services"
)

func (s *Server) routeSend(e *echo.Echo) {
	e.POST("/api/events/send", s.sendEvent)
}

// sendEvent is sendEvent over HTTP: {sender, kwargs, eventType}.
func (s *Server) sendEvent(c echo.Context) error {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return err
	}
	v, err := host.ParseJSONValue(body)
	if err != nil {
		return errBadRequest("request body is not valid JSON: %v", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return errBadRequest("send a JSON object {sender, kwargs, eventType}")
	}
	for k := range m {
		if k != "sender" && k != "kwargs" && k != "eventType" {
			return errBadRequest("unknown field %q: send {sender, kwargs, eventType}", k)
		}
	}
	sender, ok := m["sender"].(string)
	if !ok || sender == "" {
		return errBadRequest("sender must be a non-empty string")
	}
	eventType, ok := m["eventType"].(string)
	if _, present := m["eventType"]; present && !ok {
		return errBadRequest("eventType must be a string")
	}
	res, err := s.api.SendEvent(c.Request().Context(), engine.SendRequest{Sender: sender, Kwargs: m["kwargs"], EventType: eventType})
	if err != nil {
		return services.EngineError("sendEvent", err)
	}
	return c.JSON(http.StatusOK, services.SendResultToJS(res))
}
