package web

// The editor's writes (docs/reference.md §6): save and delete an app element. The host does the
// file-system work and the validation; this file reads requests and says what they mean.

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
)

func (s *Server) routeEdit(e *echo.Echo) {
	e.PUT("/api/elements/:fullName", s.saveElement)
	e.DELETE("/api/elements/:fullName", s.deleteElement)
}

func (s *Server) editor() (Editor, error) {
	if s.deps.Editor == nil {
		return nil, errUnavailable("editing elements is not available on this server")
	}
	return s.deps.Editor, nil
}

// draftBody is the draft of an element in a request: {definition, files}. definition is the
// e.json text (a string, kept byte for byte so problems point into what the editor shows) or
// a JSON object (written indented, keys sorted); files map relative names to texts.
type draftBody struct {
	Definition string
	Files      map[string]string
}

func readDraft(m map[string]any) (draftBody, error) {
	var d draftBody
	switch def := m["definition"].(type) {
	case string:
		d.Definition = def
	case map[string]any:
		b, err := json.MarshalIndent(def, "", "  ")
		if err != nil {
			return d, errBadRequest("definition cannot be written as JSON: %v", err)
		}
		d.Definition = string(b) + "\n"
	case nil:
		return d, errBadRequest("definition is required: the element's e.json, as an object or as its text")
	default:
		return d, errBadRequest("definition must be an object or the text of e.json")
	}
	d.Files = map[string]string{}
	switch files := m["files"].(type) {
	case nil:
	case map[string]any:
		for name, v := range files {
			text, ok := v.(string)
			if !ok {
				return d, errBadRequest("files[%q] must be the file's text (a string)", name)
			}
			d.Files[name] = text
		}
	default:
		return d, errBadRequest("files must be an object {name: text}")
	}
	return d, nil
}

func boolQuery(c echo.Context, name string) (bool, error) {
	v := c.QueryParam(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errBadRequest("%s must be true or false, got %q", name, v)
	}
	return b, nil
}

// editRequest is what a save and a delete both read first: the element, the editor, ?force.
func (s *Server) editRequest(c echo.Context) (name string, ed Editor, force bool, err error) {
	if name, err = fullNameParam(c, "fullName"); err != nil {
		return "", nil, false, err
	}
	if ed, err = s.editor(); err != nil {
		return "", nil, false, err
	}
	force, err = boolQuery(c, "force")
	return name, ed, force, err
}

func (s *Server) saveElement(c echo.Context) error {
	name, ed, force, err := s.editRequest(c)
	if err != nil {
		return err
	}
	m, err := readObject(c, "definition", "files", "version")
	if err != nil {
		return err
	}
	d, err := readDraft(m)
	if err != nil {
		return err
	}
	version, ok := m["version"].(string)
	if m["version"] != nil && !ok {
		return errBadRequest("version must be the string GET /api/elements/%s answered", name)
	}
	res, err := ed.SaveElement(c.Request().Context(), name, d.Definition, d.Files, version, force)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created, _ := res["created"].(bool); created {
		status = http.StatusCreated
	}
	return c.JSON(status, res)
}

func (s *Server) deleteElement(c echo.Context) error {
	name, ed, force, err := s.editRequest(c)
	if err != nil {
		return err
	}
	res, err := ed.DeleteElement(c.Request().Context(), name, c.QueryParam("version"), force)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}
