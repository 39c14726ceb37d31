package web

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

func (s *Server) routeHealth(e *echo.Echo) {
	e.GET("/api/health", s.health)
}

// health needs no token: load balancers and `trellis` itself probe it.
func (s *Server) health(c echo.Context) error {
	status := "ok"
	problems := s.deps.App.Problems()
	if len(problems) > 0 {
		status = "degraded"
	}
	lag, err := s.deps.Events.EventLag(c.Request().Context())
	if err != nil {
		status = "degraded"
		lag = nil
	}
	return c.JSON(http.StatusOK, map[string]any{
		"lag":      lag,
		"log":      s.deps.Logs.LogStats(),
		"status":   status,
		"version":  s.deps.App.Version(),
		"backends": s.deps.App.Backends(),
		"app":      s.deps.App.Snapshot().App.Name,
		"problems": len(problems),
	})
}
