package web

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/trellis-run/trellis/host/registry"
)

func (s *Server) routeElements(e *echo.Echo) {
	e.GET("/api/elements", s.listElements)
	e.GET("/api/elements/:fullName", s.getElement)
}

// elementSummary is one row of GET /api/elements (docs/reference.md §6).
type elementSummary struct {
	FullName  string `json:"fullName"`
	Title     string `json:"title"`
	Type      string `json:"type"`
	Layer     string `json:"layer"`
	Origin    string `json:"origin"`
	Overrides string `json:"overrides,omitempty"`
}

func (s *Server) listElements(c echo.Context) error {
	snap := s.deps.App.Snapshot()
	out := []elementSummary{}
	for _, el := range snap.Sorted() {
		out = append(out, elementSummary{
			FullName: el.FullName, Title: el.Title, Type: el.Type,
			Layer: string(el.Layer), Origin: string(el.Origin), Overrides: string(el.Overrides),
		})
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) getElement(c echo.Context) error {
	name, err := fullNameParam(c, "fullName")
	if err != nil {
		return err
	}
	snap := s.deps.App.Snapshot()
	el := snap.Elements[name]
	if el == nil {
		return errNotFound("no element %q in app %q", name, snap.App.Name)
	}
	problems := []registry.Problem{}
	for _, p := range s.deps.App.Problems() {
		if p.Element == name {
			problems = append(problems, p)
		}
	}
	out := map[string]any{
		"fullName":   el.FullName,
		"layer":      el.Layer,
		"origin":     el.Origin,
		"overrides":  el.Overrides,
		"definition": el.Raw,
		"resolved":   el.Definition,
		"files":      el.Files,
		"errors":     problems,
	}
	// version is what a save or delete must send back: a hash of the app element's files as
	// they are on disk now (absent for built-in and inherited elements, which are not edited).
	if s.deps.Editor != nil && el.Origin == registry.OriginApp {
		if v, ok := s.deps.Editor.ElementVersion(name); ok {
			out["version"] = v
		}
	}
	return c.JSON(http.StatusOK, out)
}
