package web

import (
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/trellis-run/trellis/host/services"
	"github.com/trellis-run/trellis/host/tasks"
	"github.com/trellis-run/trellis/host/timers"
	"github.com/trellis-run/trellis/host/vocab"
)

func (s *Server) routeTasks(e *echo.Echo) {
	e.GET("/api/tasks/templates", s.taskTemplates)
	e.POST("/api/tasks", s.createTask)
	e.GET("/api/tasks", s.listTasks)
	e.GET("/api/tasks/:taskId", s.getTask)
	e.POST("/api/tasks/:taskId/:op", s.taskOp)
}

func (s *Server) taskCenter() (*tasks.Center, error) {
	if tc := s.api.Tasks(); tc != nil {
		return tc, nil
	}
	return nil, &apiError{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "the task center is not running on this host"}
}

// taskTemplates is getTaskTmplList: ?q= matches title or fullName ("" = all).
func (s *Server) taskTemplates(c echo.Context) error {
	return c.JSON(http.StatusOK, services.TaskTemplates(s.api.Snapshot(), c.QueryParam("q")))
}

// createTask is createTimerTask: {fullName, startTime, funcName, taskType, argDict}.
func (s *Server) createTask(c echo.Context) error {
	m, err := readObject(c, "fullName", "startTime", "funcName", "taskType", "argDict")
	if err != nil {
		return err
	}
	tc, err := s.taskCenter()
	if err != nil {
		return err
	}
	res, err := tc.CreateTimerTask(c.Request().Context(), tasks.CreateRequest{
		FullName: m["fullName"], StartTime: m["startTime"], FuncName: m["funcName"], TaskType: m["taskType"], ArgDict: m["argDict"],
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

// listTasks is task records, newest first: ?fullName=&status=&page=&pageSize=.
func (s *Server) listTasks(c echo.Context) error {
	q := timers.ListQuery{FullName: c.QueryParam("fullName"), Status: c.QueryParam("status")}
	var err error
	if q.Page, err = intParam(c, "page"); err != nil {
		return err
	}
	if q.PageSize, err = intParam(c, "pageSize"); err != nil {
		return err
	}
	if q.Status != "" && !timers.ValidStatus(q.Status) {
		return errBadRequest("status %q is not a task status: use waiting, running, success, fail or forcedEnd", q.Status)
	}
	tc, err := s.taskCenter()
	if err != nil {
		return err
	}
	res, err := tc.ListTasks(c.Request().Context(), q)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

func (s *Server) getTask(c echo.Context) error {
	id, err := idParam(c, "taskId")
	if err != nil {
		return err
	}
	tc, err := s.taskCenter()
	if err != nil {
		return err
	}
	res, err := tc.GetTask(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

func (s *Server) taskOp(c echo.Context) error {
	id, err := idParam(c, "taskId")
	if err != nil {
		return err
	}
	if c.Param("op") != "forcedEnd" {
		return errNotFound("no task operation %q: use forcedEnd", c.Param("op"))
	}
	tc, err := s.taskCenter()
	if err != nil {
		return err
	}
	res, err := tc.ForcedEnd(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

// readObject reads a JSON object body whose keys are all among allowed.
func readObject(c echo.Context, allowed ...string) (map[string]any, error) {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return nil, err
	}
	v, err := vocab.DecodeJSON(body)
	if err != nil {
		return nil, errBadRequest("request body is not valid JSON: %v", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errBadRequest("send a JSON object {%s}", strings.Join(allowed, ", "))
	}
	if allowed != nil {
	next:
		for k := range m {
			for _, a := range allowed {
				if k == a {
					continue next
				}
			}
			return nil, errBadRequest("unknown field %q: send {%s}", k, strings.Join(allowed, ", "))
		}
	}
	return m, nil
}

// intParam reads an optional whole-number query parameter (0 when absent).
func intParam(c echo.Context, name string) (int, error) {
	v := c.QueryParam(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, errBadRequest("%s must be a whole number, got %q", name, v)
	}
	return n, nil
}
