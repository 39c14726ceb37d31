package web

import (
	"net/http"
	"strconv"
	"time"

	"github.com/trellis-run/trellis/host/vocab"

	"github.com/labstack/echo/v4"

	"github.com/trellis-run/trellis/logstore"
)

func (s *Server) routeAnalytics(e *echo.Echo) {
	e.GET("/api/analytics/summary", s.analyticsSummary)
	e.GET("/api/analytics/timeseries", s.analyticsTimeSeries)
}

// timeRange reads start and end (any datetime form; default: the last 24 hours).
func (s *Server) timeRange(c echo.Context) (time.Time, time.Time, error) {
	end, err := s.timeParam(c, "end", time.Now())
	if err != nil {
		return end, end, err
	}
	start, err := s.timeParam(c, "start", end.Add(-24*time.Hour))
	return start, end, err
}

func (s *Server) timeParam(c echo.Context, name string, def time.Time) (time.Time, error) {
	v := c.QueryParam(name)
	if v == "" {
		return def, nil
	}
	var arg any = v
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		arg = n
	}
	t, err := vocab.ParseDatetime(arg, s.deps.App.Location())
	if err != nil {
		return t, errBadRequest("%s: %v", name, err)
	}
	return t, nil
}

// analyticsSummary answers counts by status, failure rate and p50/p95/p99 duration per element.
func (s *Server) analyticsSummary(c echo.Context) error {
	start, end, err := s.timeRange(c)
	if err != nil {
		return err
	}
	q := logstore.SummaryQuery{Start: start, End: end, FullName: c.QueryParam("fullName")}
	if err := q.Validate(); err != nil {
		return err
	}
	store, err := s.logStore()
	if err != nil {
		return err
	}
	rows, err := store.Summary(c.Request().Context(), q)
	if err != nil {
		return err
	}
	loc := s.deps.App.Location()
	return c.JSON(http.StatusOK, map[string]any{
		"start": vocab.FormatDatetime(start, loc), "end": vocab.FormatDatetime(end, loc), "elements": rows,
	})
}

// analyticsTimeSeries answers counts per bucket (1m to 1d; default 1h).
func (s *Server) analyticsTimeSeries(c echo.Context) error {
	start, end, err := s.timeRange(c)
	if err != nil {
		return err
	}
	bucket := time.Hour
	if v := c.QueryParam("bucket"); v != "" {
		if v == "1d" {
			v = "24h"
		}
		if bucket, err = time.ParseDuration(v); err != nil {
			return errBadRequest("bucket must be a duration from 1m to 1d (1m, 5m, 1h, 1d), got %q", v)
		}
	}
	q := logstore.TimeSeriesQuery{Start: start, End: end, Bucket: bucket, FullName: c.QueryParam("fullName")}
	if err := q.Validate(); err != nil {
		return err
	}
	store, err := s.logStore()
	if err != nil {
		return err
	}
	points, err := store.TimeSeries(c.Request().Context(), q)
	if err != nil {
		return err
	}
	loc := s.deps.App.Location()
	out := make([]map[string]any, len(points))
	for i, p := range points {
		out[i] = map[string]any{"start": vocab.FormatDatetime(p.Start, loc), "total": p.Total,
			"byStatus": p.ByStatus, "failed": p.Failed, "p95": p.P95}
	}
	return c.JSON(http.StatusOK, map[string]any{"bucket": bucket.String(), "points": out})
}
