package web

// Checks, test runs and replays of drafts (docs/reference.md §6.7): the editor validates and
// runs what it holds without saving it. The host validates the draft (as a save does) and runs
// it on a sandbox of its own.

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/vocab"
)

func (s *Server) routeDraft(e *echo.Echo) {
	e.POST("/api/elements/:fullName/check", s.checkDraft)
	e.POST("/api/elements/:fullName/run", s.runDraft)
}

func (s *Server) drafts() (Drafts, error) {
	if s.deps.Drafts == nil {
		return nil, errUnavailable("draft runs are not available on this server")
	}
	return s.deps.Drafts, nil
}

// checkDraft validates a draft as a save would, writing and running nothing: the editor's
// problems as you type. A draft with problems is a 200 listing them (the 422 of a save is for
// a draft that was refused); none is {"problems": []}.
func (s *Server) checkDraft(c echo.Context) error {
	name, err := fullNameParam(c, "fullName")
	if err != nil {
		return err
	}
	dr, err := s.drafts()
	if err != nil {
		return err
	}
	m, err := readObject(c, "definition", "files")
	if err != nil {
		return err
	}
	d, err := readDraft(m)
	if err != nil {
		return err
	}
	problems, err := dr.CheckDraft(c.Request().Context(), name, d.Definition, d.Files)
	if err != nil {
		return err
	}
	if problems == nil {
		problems = []registry.Problem{}
	}
	return c.JSON(http.StatusOK, map[string]any{"problems": problems})
}

func (s *Server) runDraft(c echo.Context) error {
	name, err := fullNameParam(c, "fullName")
	if err != nil {
		return err
	}
	dr, err := s.drafts()
	if err != nil {
		return err
	}
	m, err := readObject(c, "definition", "files", "function", "args")
	if err != nil {
		return err
	}
	d, err := readDraft(m)
	if err != nil {
		return err
	}
	fn, _ := m["function"].(string)
	if !functionNamePattern.MatchString(fn) {
		return errBadRequest("function must be the name of a function the draft exports, got %v", m["function"])
	}
	switch m["args"].(type) {
	case nil, []any, map[string]any:
	default:
		return errBadRequest("args must be an array of arguments, or an object (the kwargs of a sample event, a task's argDict, a service's one argument)")
	}
	res, err := dr.RunDraft(c.Request().Context(), name, d.Definition, d.Files, fn, m["args"])
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

// replayNode runs a draft of a logged node's element on the node's input (POST
// /api/nodes/{nodeId}/replay). fullName, when sent, is the element the draft is of: a node of
// another element is a conflict, rather than a run of this draft as that element.
func (s *Server) replayNode(c echo.Context, node string) error {
	dr, err := s.drafts()
	if err != nil {
		return err
	}
	m, err := readObject(c, "definition", "files", "fullName")
	if err != nil {
		return err
	}
	d, err := readDraft(m)
	if err != nil {
		return err
	}
	if m["fullName"] != nil {
		if err := s.replayOf(c.Request().Context(), node, m["fullName"]); err != nil {
			return err
		}
	}
	res, err := dr.ReplayNode(c.Request().Context(), node, d.Definition, d.Files)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

// replayOf checks that the logged node is one of the element fullName names.
func (s *Server) replayOf(ctx context.Context, node string, fullName any) error {
	want, _ := fullName.(string)
	if !vocab.IsFullName(want) {
		return errBadRequest("fullName must be the fullName of the element the draft is of, got %v", fullName)
	}
	store, err := s.logStore()
	if err != nil {
		return err
	}
	rows, err := store.Attempts(ctx, node)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return errNotFound("no node %q in the execution log", node)
	}
	if got := rows[len(rows)-1].FullName; got != want {
		return vocab.Errorf(vocab.CodeConflict, "node %s is a node of %s, not of %s: replay it with a draft of %s", node, got, want, got)
	}
	return nil
}
