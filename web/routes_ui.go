package web

import (
	"embed"
	"io/fs"
	"net/http"

	"github.com/labstack/echo/v4"
)

// uiFiles is the editor and console, built into the binary so `trellis serve` needs nothing else.
//
//go:embed ui
var uiFiles embed.FS

func (s *Server) routeUI(e *echo.Echo) {
	sub, _ := fs.Sub(uiFiles, "ui")
	files := http.FileServer(http.FS(sub))
	// Unknown API routes answer JSON, not the editor's 404 page.
	e.Any("/api/*", func(c echo.Context) error {
		return errNotFound("no API route %s %s; see docs/http-api.md", c.Request().Method, c.Request().URL.Path)
	})
	e.GET("/*", func(c echo.Context) error {
		files.ServeHTTP(c.Response(), c.Request())
		return nil
	})
}
