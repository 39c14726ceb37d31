package web

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/logstore"
)

// idPattern is what request and node ids may look like in a path.

func (s *Server) routeEvents(e *echo.Echo) {
	e.GET("/api/events/logs", s.eventLogs)
	e.GET("/api/events/requests/:requestId", s.requestLogs)
	e.GET("/api/events/requests/:requestId/nodes/:nodeId", s.nodeLogs)
	e.GET("/api/events/nodes/:nodeId/attempts", s.nodeAttempts)
	e.POST("/api/events/send", s.sendEvent)
	e.POST("/api/events/resend", s.bulkResend)
	e.GET("/api/events/listeners", s.eventListeners) // routes_listeners.go
}

// bulkResend resends every node a log query matches (query string as GET /api/events/logs;
// status defaults to fail).
func (s *Server) bulkResend(c echo.Context) error {
	q, err := s.logQuery(c)
	if err != nil {
		return err
	}
	res, err := s.deps.Events.BulkResend(c.Request().Context(), q)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

// eventLogs is getEventLog over HTTP, plus the console's free filters: stage (of the latest
// state: deadLettered finds the dead letters), sender, host, errorCode, text (found in kwargs or
// the error, any case) and kwargs.<field>=<value>.
func (s *Server) eventLogs(c echo.Context) error {
	q, err := s.logQuery(c)
	if err != nil {
		return err
	}
	store, err := s.logStore()
	if err != nil {
		return err
	}
	page, err := store.Query(c.Request().Context(), q)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"totalCount": page.TotalCount, "rowDatas": logstore.PublicRows(page.RowDatas, s.deps.App.Location())})
}

// logQuery reads getEventLog's arguments and the free filters from the query string.
func (s *Server) logQuery(c echo.Context) (logstore.Query, error) {
	params := c.QueryParams()
	args := map[string]any{}
	for _, k := range []string{"fullName", "startTime", "endTime", "status", "stage"} {
		if v := params.Get(k); v != "" {
			args[k] = datetimeOrString(k, v)
		}
	}
	for _, k := range []string{"page", "pageSize"} {
		if v := params.Get(k); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return logstore.Query{}, errBadRequest("%s must be a whole number, got %q", k, v)
			}
			args[k] = n
		}
	}
	q, err := logstore.QueryFromArgs(args, s.deps.App.Location())
	if err != nil {
		return q, err
	}
	q.Sender, q.Host, q.ErrorCode, q.Text = params.Get("sender"), params.Get("host"), params.Get("errorCode"), params.Get("text")
	for k, vs := range params {
		if name, ok := strings.CutPrefix(k, "kwargs."); ok && len(vs) > 0 {
			if q.Kwargs == nil {
				q.Kwargs = map[string]string{}
			}
			q.Kwargs[name] = vs[0]
		}
	}
	if err := q.Validate(); err != nil {
		return q, err
	}
	return q, nil
}

// datetimeOrString passes epoch milliseconds in a query string on as a number, so
// ?startTime=1700000000000 works like the JS API's numeric form.
func datetimeOrString(key, v string) any {
	if key == "startTime" || key == "endTime" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
	}
	return v
}

func (s *Server) requestLogs(c echo.Context) error {
	id, err := idParam(c, "requestId")
	if err != nil {
		return err
	}
	return s.answerRows(c, func(ctx context.Context, st logstore.Store) ([]logstore.Row, error) {
		return st.ByRequest(ctx, id)
	}, "no log rows for request %q", id)
}

func (s *Server) nodeLogs(c echo.Context) error {
	req, err := idParam(c, "requestId")
	if err != nil {
		return err
	}
	node, err := idParam(c, "nodeId")
	if err != nil {
		return err
	}
	return s.answerRows(c, func(ctx context.Context, st logstore.Store) ([]logstore.Row, error) {
		return st.ByNode(ctx, req, node)
	}, "no node %q in request %q", node, req)
}

func (s *Server) nodeAttempts(c echo.Context) error {
	node, err := idParam(c, "nodeId")
	if err != nil {
		return err
	}
	return s.answerRows(c, func(ctx context.Context, st logstore.Store) ([]logstore.Row, error) {
		return st.Attempts(ctx, node)
	}, "no node %q", node)
}

// answerRows runs one lookup of log rows and answers them, or 404 when there are none.
func (s *Server) answerRows(c echo.Context, fetch func(context.Context, logstore.Store) ([]logstore.Row, error), notFound string, args ...any) error {
	store, err := s.logStore()
	if err != nil {
		return err
	}
	rows, err := fetch(c.Request().Context(), store)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return errNotFound(notFound, args...)
	}
	return c.JSON(http.StatusOK, logstore.PublicRows(rows, s.deps.App.Location()))
}

func (s *Server) logStore() (logstore.Store, error) {
	if st := s.deps.Logs.LogStore(); st != nil {
		return st, nil
	}
	return nil, errUnavailable("the execution log is not running on this host")
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
