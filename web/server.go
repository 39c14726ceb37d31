package web

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Server.
type Options struct {
	// Token is the bearer token every /api route but /api/health requires. Required.
	Token string
	// MaxBodyBytes caps request bodies (413 past it); default 4 MiB.
	MaxBodyBytes int64
	// MaxValueDepth caps how deeply a body's arguments or kwargs may nest (400 past it, before
	// the body is decoded); default 64, the host's --max-depth.
	MaxValueDepth int
	// SessionTTL is how long a browser session (POST /api/session) lasts; default 12 hours.
	SessionTTL time.Duration
	// SignalHeartbeat is how often an idle signal stream gets a comment, so that proxies keep
	// it open; default 15 s.
	SignalHeartbeat time.Duration
	// Metrics is the registry GET /metrics answers (host/metrics.Collector.Registry); the
	// server adds its HTTP metrics to it. Nil: a registry of the HTTP metrics alone.
	Metrics *prometheus.Registry
	// MetricsPublic lets GET /metrics answer without the token (--metrics-public), for a
	// Prometheus that cannot send one; by default it needs the token like the API.
	MetricsPublic bool
	// Logger receives one access log line per request (method, route, path, status, duration;
	// never a header, so never the token). Nil logs nothing.
	Logger *slog.Logger
}

// Server serves the API and the editor. Start and Stop are safe to call twice.
type Server struct {
	deps     Deps
	opts     Options
	echo     *echo.Echo
	sessions *sessions
	log      *slog.Logger
	httpm    *httpMetrics

	mu   sync.Mutex
	srv  *http.Server
	ln   net.Listener
	stop chan struct{} // closed by Stop: long answers (the signal stream) end
}

// New builds the routes; it listens only on Start.
func New(deps Deps, opts Options) (*Server, error) {
	if deps.App == nil || deps.Calls == nil || deps.Events == nil || deps.Logs == nil {
		return nil, errors.New("web: Deps.App, Calls, Events and Logs are required")
	}
	if opts.Token == "" {
		return nil, errors.New("web: Options.Token is required: every API route needs a bearer token")
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 4 << 20
	}
	if deps.Editor == nil {
		if ed, ok := deps.App.(Editor); ok {
			deps.Editor = ed
		}
	}
	if deps.Drafts == nil {
		if dr, ok := deps.App.(Drafts); ok {
			deps.Drafts = dr
		}
	}
	if deps.Signals == nil {
		if sg, ok := deps.App.(Signals); ok {
			deps.Signals = sg
		}
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 12 * time.Hour
	}
	if opts.SignalHeartbeat <= 0 {
		opts.SignalHeartbeat = 15 * time.Second
	}
	if opts.Metrics == nil {
		opts.Metrics = prometheus.NewRegistry()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	httpm, err := newHTTPMetrics(opts.Metrics)
	if err != nil {
		return nil, fmt.Errorf("web: register the HTTP metrics: %w (one registry per server)", err)
	}
	s := &Server{deps: deps, opts: opts, echo: echo.New(), sessions: newSessions(opts.SessionTTL), stop: make(chan struct{}),
		log: opts.Logger, httpm: httpm}
	e := s.echo
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = writeError
	e.JSONSerializer = finiteJSON{}
	e.Use(s.observe)
	e.Use(middleware.Recover())
	e.Use(s.limitBody)
	e.Use(refuseInvalidHeaders)
	e.Use(s.requireToken)
	e.Use(decodeParams)
	s.routeHealth(e)
	s.routeOpenAPI(e)
	s.routeSession(e)
	s.routeElements(e)
	s.routeEdit(e)
	s.routeDraft(e)
	s.routeServices(e)
	s.routeEvents(e)
	s.routeNodes(e)
	s.routeTasks(e)
	s.routeModels(e)
	s.routeAnalytics(e)
	s.routeSignals(e)
	s.routeMetrics(e)
	s.routeUI(e)
	return s, nil
}

// Handler returns the HTTP handler, for tests and embedding.
func (s *Server) Handler() http.Handler { return s.echo }

// Start listens on addr and serves in the background; it returns once the port is bound.
func (s *Server) Start(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	ln = guardListener{ln}
	s.ln = ln
	select {
	case <-s.stop: // started again after a Stop
		s.stop = make(chan struct{})
	default:
	}
	srv := &http.Server{Handler: s.echo, ReadHeaderTimeout: 10 * time.Second}
	s.srv = srv
	go func() { _ = srv.Serve(ln) }() // not s.srv: Stop clears it while Serve runs
	return nil
}

// Addr is the address the server listens on (after Start).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Stop shuts the server down, letting requests in flight finish until ctx ends.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	if srv != nil {
		close(s.stop)
	}
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Shutdown(ctx)
}

// stopping is closed when the server stops: answers that last (the signal stream) end then,
// since Shutdown waits for every answer to finish.
func (s *Server) stopping() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stop
}

// limitBody answers 413 for bodies over MaxBodyBytes, whether or not they declare a length.
func (s *Server) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if req.ContentLength > s.opts.MaxBodyBytes {
			return errBodyTooLarge(s.opts.MaxBodyBytes)
		}
		req.Body = http.MaxBytesReader(c.Response(), req.Body, s.opts.MaxBodyBytes)
		c.Set(maxDepthKey, s.opts.MaxValueDepth)
		return next(c)
	}
}

// decodeParams decodes the percent-escapes of path parameters. When a path holds escapes echo
// routes on the raw path and hands its parameters on as sent, so the editor's
// encodeURIComponent("services.$Svc") would arrive as "services.%24Svc" and be refused. Decoded
// once, a parameter is what the client meant; "%2F" becomes "/", which no name or id accepts.
func decodeParams(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if c.Request().URL.RawPath == "" {
			return next(c)
		}
		vals := c.ParamValues()
		for i, v := range vals {
			if !strings.Contains(v, "%") {
				continue
			}
			d, err := url.PathUnescape(v)
			if err != nil {
				return errBadRequest("path parameter %q is not valid percent-encoding", v)
			}
			vals[i] = d
		}
		c.SetParamValues(vals...)
		return next(c)
	}
}

// requireToken guards every /api route except GET /api/health, GET /api/openapi.json and the
// session routes. A request is authenticated by the bearer token (curl, the CLI) or by the
// session cookie of a browser that logged in with POST /api/session; one authenticated by the
// cookie that changes something must come from this server's own pages (sameOrigin). The
// editor's static files are public.
func (s *Server) requireToken(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		p := req.URL.Path
		if !strings.HasPrefix(p, "/api/") && p != "/api" {
			return next(c)
		}
		if (p == "/api/health" || p == "/api/openapi.json") && req.Method == http.MethodGet {
			// Probes and API tooling: neither says anything an attacker could use.
			return next(c)
		}
		if p == "/api/session" && (req.Method == http.MethodPost || req.Method == http.MethodDelete) {
			return next(c) // logging in and out check what they need themselves
		}
		auth := req.Header.Get("Authorization")
		if auth == "" && s.cookieSession(c) {
			if unsafeMethod(req.Method) {
				if err := sameOrigin(c, true); err != nil {
					return err
				}
			}
			return next(c)
		}
		token, ok := bearer(auth)
		if !ok {
			return errUnauthorized("missing bearer token: send Authorization: Bearer <token> (TRELLIS_ADMIN_TOKEN, or the token `trellis serve` printed on first start), or log in with POST /api/session")
		}
		if !s.rightToken(token) {
			return errUnauthorized("wrong bearer token")
		}
		return next(c)
	}
}

// bearer is the token of an Authorization header of the Bearer scheme.
func bearer(auth string) (string, bool) {
	const prefix = "Bearer "
	if len(auth) <= len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return "", false
	}
	return auth[len(prefix):], true
}

func (s *Server) rightToken(token string) bool {
	return subtle.ConstantTimeCompare([]byte(token), []byte(s.opts.Token)) == 1
}

// authenticated reports whether a request on a public route (GET /api/health) carries what
// requireToken lets through for a read: the bearer token, or else a browser session's cookie.
// A wrong token is no error there: the route answers what it tells everyone.
func (s *Server) authenticated(c echo.Context) bool {
	auth := c.Request().Header.Get("Authorization")
	if auth == "" {
		return s.cookieSession(c)
	}
	token, ok := bearer(auth)
	return ok && s.rightToken(token)
}
