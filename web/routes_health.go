package web

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

func (s *Server) routeHealth(e *echo.Echo) {
	e.GET("/api/health", s.health)
}

// publicBackends are the backends everyone may see named (CONTRACT §6).
var publicBackends = []string{"bus", "logs", "db"}

// health needs no token: load balancers and `trellis` itself probe it. Without the token it
// answers {status, version, backends: {bus, logs, db}} and nothing else; the app's name and
// problems, each listener's backlog (which names the listeners) and the log writer's counters
// are details for the token (or a browser session) only.
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
	all := s.deps.App.Backends()
	if !s.authenticated(c) {
		backends := map[string]string{}
		for _, k := range publicBackends {
			if v, ok := all[k]; ok {
				backends[k] = v
			}
		}
		return c.JSON(http.StatusOK, map[string]any{"status": status, "version": s.deps.App.Version(), "backends": backends})
	}
	return c.JSON(http.StatusOK, map[string]any{
		"lag":      lag,
		"log":      s.deps.Logs.LogStats(),
		"status":   status,
		"version":  s.deps.App.Version(),
		"backends": all,
		"app":      s.deps.App.Snapshot().App.Name,
		"problems": len(problems),
	})
}
