package web

import (
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/trellis-run/trellis/host/registry"
)

func (s *Server) routeElements(e *echo.Echo) {
	e.GET("/api/elements", s.listElements)
	e.GET("/api/elements/:fullName", s.getElement)
	e.GET("/api/elements/:fullName/schema", s.getElementSchema)
}

// elementSummary is one row of GET /api/elements (docs/reference.md §6).
type elementSummary struct {
	FullName  string `json:"fullName"`
	Title     string `json:"title"`
	Type      string `json:"type"`
	Layer     string `json:"layer"`
	Origin    string `json:"origin"`
	Overrides string `json:"overrides,omitempty"`
	// Problems counts what is wrong with its files on disk; BrokenOnDisk says the host runs
	// its last good version instead (or, for a new element, nothing).
	Problems     int  `json:"problems,omitempty"`
	BrokenOnDisk bool `json:"brokenOnDisk,omitempty"`
}

// problemsByElement groups the problems of the files on disk by element.
func (s *Server) problemsByElement() map[string][]registry.Problem {
	out := map[string][]registry.Problem{}
	for _, p := range s.deps.App.Problems() {
		if p.Element != "" {
			out[p.Element] = append(out[p.Element], p)
		}
	}
	return out
}

func (s *Server) listElements(c echo.Context) error {
	snap := s.deps.App.Snapshot()
	problems := s.problemsByElement()
	broken := map[string]bool{}
	for _, n := range snap.BrokenOnDisk() {
		broken[n] = true
	}
	out := []elementSummary{}
	for _, el := range snap.Sorted() {
		out = append(out, elementSummary{
			FullName: el.FullName, Title: el.Title, Type: el.Type,
			Layer: string(el.Layer), Origin: string(el.Origin), Overrides: string(el.Overrides),
			Problems: len(problems[el.FullName]), BrokenOnDisk: broken[el.FullName],
		})
	}
	// New app elements that are broken on disk are not in the snapshot, but the editor must
	// list them to fix them.
	for _, name := range snap.BrokenOnDisk() {
		if snap.Elements[name] != nil {
			continue
		}
		files, _ := snap.OnDisk(name)
		def := diskDefinition(files)
		row := elementSummary{FullName: name, Title: name[lastDot(name)+1:], Origin: string(registry.OriginApp),
			Problems: len(problems[name]), BrokenOnDisk: true}
		if t, ok := def["title"].(string); ok && t != "" {
			row.Title = t
		}
		row.Type, _ = def["type"].(string)
		if sc := snap.Schema(name); sc != nil {
			row.Layer = string(sc.Layer)
		}
		out = append(out, row)
	}
	return c.JSON(http.StatusOK, out)
}

func lastDot(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '.' {
			return i
		}
	}
	return -1
}

// diskDefinition is e.json of files as an object, or nil when it does not parse as one.
func diskDefinition(files map[string]string) map[string]any {
	var def map[string]any
	if text, ok := files["e.json"]; ok {
		if json.Unmarshal([]byte(text), &def) != nil {
			return nil
		}
	}
	return def
}

// getElement answers the element as the editor must edit it: its files on disk, the problems
// found in them (so markers sit in that text), and, when those files are broken, the version the
// host keeps running as "running".
func (s *Server) getElement(c echo.Context) error {
	name, err := fullNameParam(c, "fullName")
	if err != nil {
		return err
	}
	snap := s.deps.App.Snapshot()
	el := snap.Elements[name]
	diskFiles, broken := snap.OnDisk(name)
	if el == nil && !broken {
		return errNotFound("no element %q in app %q", name, snap.App.Name)
	}
	problems := s.problemsByElement()[name]
	if problems == nil {
		problems = []registry.Problem{}
	}
	out := map[string]any{"fullName": name, "errors": problems, "schema": snap.Schema(name)}
	if el != nil {
		out["title"], out["type"], out["layer"] = el.Title, el.Type, el.Layer
		out["origin"], out["overrides"] = el.Origin, el.Overrides
		out["definition"], out["resolved"], out["files"] = el.Raw, el.Definition, el.Files
	}
	if broken {
		def := diskDefinition(diskFiles)
		if el != nil {
			out["running"] = map[string]any{"definition": el.Raw, "resolved": el.Definition, "files": el.Files}
		} else {
			out["origin"], out["resolved"] = registry.OriginApp, map[string]any{}
			out["title"] = name[lastDot(name)+1:]
			if t, ok := def["title"].(string); ok && t != "" {
				out["title"] = t
			}
			out["type"], _ = def["type"].(string)
			if sc := snap.Schema(name); sc != nil {
				out["layer"] = sc.Layer
			}
		}
		out["definition"], out["files"], out["brokenOnDisk"] = def, diskFiles, true
	}
	// version is what a save or delete must send back: a hash of the app element's files as
	// they are on disk now (absent for built-in and inherited elements, which are not edited).
	if s.deps.Editor != nil && (broken || el.Origin == registry.OriginApp) {
		if v, ok := s.deps.Editor.ElementVersion(name); ok {
			out["version"] = v
		}
	}
	return c.JSON(http.StatusOK, out)
}

// getElementSchema answers the schema of the element's e.json: the registry's own, so a form
// built from it accepts what validation accepts.
func (s *Server) getElementSchema(c echo.Context) error {
	name, err := fullNameParam(c, "fullName")
	if err != nil {
		return err
	}
	snap := s.deps.App.Snapshot()
	sc := snap.Schema(name)
	if sc == nil {
		return errNotFound("no element %q in app %q, or its type is unknown", name, snap.App.Name)
	}
	return c.JSON(http.StatusOK, sc)
}
