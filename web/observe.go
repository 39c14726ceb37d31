package web

import (
	"log/slog"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// httpMetrics are the server's own metrics, on the registry Options.Metrics names.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "trellis", Name: "http_requests_total",
			Help: "HTTP requests answered, by method, route (the pattern, not the path: ids do not make series) and status."},
			[]string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "trellis", Name: "http_request_duration_seconds",
			Help: "How long HTTP requests took to answer, by method and route.", Buckets: prometheus.DefBuckets},
			[]string{"method", "route"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observe is the outermost middleware: it answers a handler's error itself (as echo would after
// it), so that what it records is the status the client got, then writes the access log line and
// counts the request. The line holds no header, so never the token, and no query string.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err)
		}
		took := time.Since(start)
		req, res := c.Request(), c.Response()
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		status := res.Status
		s.httpm.requests.WithLabelValues(req.Method, route, strconv.Itoa(status)).Inc()
		s.httpm.duration.WithLabelValues(req.Method, route).Observe(took.Seconds())
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		s.log.LogAttrs(req.Context(), level, "http request",
			slog.String("method", req.Method), slog.String("route", route), slog.String("path", req.URL.Path),
			slog.Int("status", status), slog.Float64("durationMs", float64(took.Microseconds())/1000),
			slog.Int64("bytes", res.Size), slog.String("remote", req.RemoteAddr))
		return nil
	}
}

func (s *Server) routeMetrics(e *echo.Echo) {
	h := promhttp.HandlerFor(s.opts.Metrics, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelError)})
	e.GET("/metrics", func(c echo.Context) error {
		if !s.opts.MetricsPublic {
			if err := s.metricsAuth(c); err != nil {
				return err
			}
		}
		h.ServeHTTP(c.Response(), c.Request())
		return nil
	})
}

// metricsAuth is requireToken's check for GET /metrics, which lives outside /api (where
// Prometheus looks for it): the bearer token, or a browser session.
func (s *Server) metricsAuth(c echo.Context) error {
	if s.authenticated(c) {
		return nil
	}
	if c.Request().Header.Get("Authorization") == "" {
		return errUnauthorized("GET /metrics needs the bearer token (Authorization: Bearer <token>; in Prometheus, authorization: {credentials: …}), unless the server runs with --metrics-public")
	}
	return errUnauthorized("wrong bearer token")
}
