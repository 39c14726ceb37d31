package web

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// uiFiles is the editor and console: the Vite build of web/ui (sources in web/ui/src), committed
// in web/ui/dist so that `go build` needs no Node.js. `make ui` rebuilds it; CI fails when the
// committed bundle differs from a fresh build of its sources.
//
//go:embed ui/dist
var uiFiles embed.FS

// uiContentTypes are set by extension rather than from the system's MIME tables, which differ
// between machines (a .js served as text/plain is refused as a module script).
var uiContentTypes = map[string]string{
	".html":  "text/html; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".mjs":   "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".json":  "application/json",
	".map":   "application/json",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".ico":   "image/x-icon",
	".woff2": "font/woff2",
	".txt":   "text/plain; charset=utf-8",
}

// uiCSP keeps the page to its own scripts and API: the admin token or session the page holds
// cannot be sent anywhere else by injected markup. Styles may be inline (CodeMirror and uPlot
// set element styles).
const uiCSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// uiModTime is a fixed modification time: embedded files have none, and a fixed one keeps
// responses free of Last-Modified guesses (caching is by Cache-Control and hashed names).
var uiModTime = time.Unix(0, 0)

func (s *Server) routeUI(e *echo.Echo) {
	dist, err := fs.Sub(uiFiles, "ui/dist")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	index, err := fs.ReadFile(dist, "index.html")
	if err != nil {
		panic("web: ui/dist/index.html missing from the embedded editor; run `make ui`")
	}

	// Unknown API routes answer JSON, not the editor.
	e.Any("/api/*", func(c echo.Context) error {
		return errNotFound("no API route %s %s; see docs/http-api.md", c.Request().Method, c.Request().URL.Path)
	})

	serveIndex := func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Type", uiContentTypes[".html"])
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Security-Policy", uiCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		http.ServeContent(c.Response(), c.Request(), "index.html", uiModTime, bytes.NewReader(index))
		return nil
	}

	static := func(c echo.Context) error {
		p := c.Request().URL.Path
		if p == "/api" {
			return errNotFound("no API route %s %s; see docs/http-api.md", c.Request().Method, p)
		}
		name := strings.TrimPrefix(path.Clean("/"+p), "/")
		if name == "" || name == "index.html" {
			return serveIndex(c)
		}
		data, err := fs.ReadFile(dist, name)
		if err != nil {
			// Hashed assets that are gone (an old page after an upgrade) and files of known
			// kinds are real 404s; every other path (such as /elements/services.GreetingSvc) is
			// a route of the single-page app.
			if _, file := uiContentTypes[path.Ext(name)]; file || strings.HasPrefix(name, "assets/") {
				return echo.NewHTTPError(http.StatusNotFound, "not found")
			}
			return serveIndex(c)
		}
		h := c.Response().Header()
		if ct, ok := uiContentTypes[path.Ext(name)]; ok {
			h.Set("Content-Type", ct)
		}
		h.Set("X-Content-Type-Options", "nosniff")
		if strings.HasPrefix(name, "assets/") {
			// Vite names every asset by the hash of its content.
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			h.Set("Cache-Control", "no-cache")
		}
		http.ServeContent(c.Response(), c.Request(), name, uiModTime, bytes.NewReader(data))
		return nil
	}
	e.GET("/*", static)
	e.HEAD("/*", static)
}
