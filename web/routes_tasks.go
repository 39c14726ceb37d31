package web

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/trellis-run/trellis/host/tasks"
	"github.com/trellis-run/trellis/host/timers"
)

func (s *Server) routeTasks(e *echo.Echo) {
	e.GET("/api/tasks/templates", s.taskTemplates)
	e.POST("/api/tasks/templates/:fullName/:op", s.templateOp)
	e.POST("/api/tasks", s.createTask)
	e.GET("/api/tasks", s.listTasks)
	e.GET("/api/tasks/:taskId", s.getTask)
	e.POST("/api/tasks/:taskId/:op", s.taskOp)
}

func (s *Server) taskCenter() (Tasks, error) {
	if s.deps.Tasks != nil {
		return s.deps.Tasks, nil
	}
	return nil, errUnavailable("the task center is not running on this host")
}

// taskTemplates is getTaskTmplList: ?q= matches title or fullName ("" = all). With the task
// center running, each row also says what the template runs, whether it is enabled, its
// schedule and its next tick (tasks.TemplateState).
func (s *Server) taskTemplates(c echo.Context) error {
	if tc, err := s.taskCenter(); err == nil {
		return c.JSON(http.StatusOK, tc.TemplateStates(c.QueryParam("q")))
	}
	return c.JSON(http.StatusOK, tasks.TemplateList(s.deps.App.Snapshot(), c.QueryParam("q")))
}

// templateOp is an operation of the task console on a template: enable and disable set the
// template's "enabled" in its e.json (a change of the app, validated and hot-reloaded as a save
// is; they answer the template's new state), run makes a task of it due now with the template's
// argDict, or the body's {argDict} (it answers the task record).
func (s *Server) templateOp(c echo.Context) error {
	name, err := fullNameParam(c, "fullName")
	if err != nil {
		return err
	}
	op := c.Param("op")
	if op != "enable" && op != "disable" && op != "run" {
		return errNotFound("no template operation %q: use enable, disable or run", op)
	}
	tc, err := s.taskCenter()
	if err != nil {
		return err
	}
	if !isTemplate(tc, name) {
		return errNotFound("no task template %q in this app (GET /api/tasks/templates lists them)", name)
	}
	ctx := c.Request().Context()
	if op == "run" {
		m, err := readOptionalObject(c, "argDict")
		if err != nil {
			return err
		}
		res, err := tc.RunTemplateNow(ctx, name, m["argDict"])
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, res)
	}
	ed, err := s.editor()
	if err != nil {
		return err
	}
	if _, err := readOptionalObject(c); err != nil {
		return err
	}
	if _, err := ed.SetElementField(ctx, name, "enabled", op == "enable"); err != nil {
		return err
	}
	for _, st := range tc.TemplateStates(name) {
		if st.FullName == name {
			return c.JSON(http.StatusOK, st)
		}
	}
	return errNotFound("task template %q is gone", name)
}

func isTemplate(tc Tasks, name string) bool {
	for _, st := range tc.TemplateStates(name) {
		if st.FullName == name {
			return true
		}
	}
	return false
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
		return errBadRequest("status %q is not a task status: use waiting, paused, running, success, fail or forcedEnd", q.Status)
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
