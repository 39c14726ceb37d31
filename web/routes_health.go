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
	problems := s.api.Problems()
	if len(problems) > 0 {
		status = "degraded"
	}
	lag, err := s.api.EventLag(c.Request().Context())
	if err != nil {
		status = "degraded"
		lag = nil
	}
	return c.JSON(http.StatusOK, map[string]any{
		"lag":      lag,
		"log":      s.api.LogStats(),
		"status":   status,
		"version":  s.api.Version(),
		"backends": s.api.Backends(),
		"app":      s.api.Snapshot().App.Name,
		"problems": len(problems),
	})
}
