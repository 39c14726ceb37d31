package web

// Browser sessions (docs/reference.md §6.1): the editor trades the admin token once for an
// HttpOnly cookie, so no script of the page ever holds the token. The cookie is a random id
// mapped in memory to an expiry — never the token, nothing to replay elsewhere — and a request it
// authenticates that changes something must come from this origin (no cross-site request
// forgery, even from a browser that ignores SameSite).

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/trellis-run/trellis/host/vocab"
)

// sessionCookie is the cookie's name.
const sessionCookie = "trellis_session"

// maxSessions bounds the store: past it the session closest to expiry is dropped, so a client
// logging in in a loop cannot grow the host's memory.
const maxSessions = 10000

// codeForbidden answers a cookie-authenticated unsafe request from another origin.
const codeForbidden = "forbidden"

// sessions maps session ids to expiries.
type sessions struct {
	mu   sync.Mutex
	byID map[string]time.Time
	ttl  time.Duration
	now  func() time.Time
}

func newSessions(ttl time.Duration) *sessions {
	return &sessions{byID: map[string]time.Time{}, ttl: ttl, now: time.Now}
}

func (s *sessions) create() (string, time.Time, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", time.Time{}, err
	}
	id := base64.RawURLEncoding.EncodeToString(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for k, exp := range s.byID {
		if !now.Before(exp) {
			delete(s.byID, k)
		}
	}
	if len(s.byID) >= maxSessions {
		oldest, first := "", time.Time{}
		for k, exp := range s.byID {
			if oldest == "" || exp.Before(first) {
				oldest, first = k, exp
			}
		}
		delete(s.byID, oldest)
	}
	exp := now.Add(s.ttl)
	s.byID[id] = exp
	return id, exp, nil
}

func (s *sessions) valid(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.byID[id]
	if ok && !s.now().Before(exp) {
		delete(s.byID, id)
		return false
	}
	return ok
}

func (s *sessions) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, id)
}

func (s *Server) routeSession(e *echo.Echo) {
	e.POST("/api/session", s.login)
	e.DELETE("/api/session", s.logout)
}

func (s *Server) login(c echo.Context) error {
	if err := sameOrigin(c, false); err != nil {
		return err
	}
	m, err := readObject(c, "token")
	if err != nil {
		return err
	}
	tok, _ := m["token"].(string)
	if tok == "" {
		return errBadRequest("send {\"token\": \"<the admin token>\"}")
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(s.opts.Token)) != 1 {
		return errUnauthorized("wrong token")
	}
	id, exp, err := s.sessions.create()
	if err != nil {
		return err
	}
	c.SetCookie(&http.Cookie{Name: sessionCookie, Value: id, Path: "/", Expires: exp, MaxAge: int(s.sessions.ttl / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.Scheme() == "https"})
	return c.JSON(http.StatusOK, map[string]any{"expiresAt": exp.UTC().Format(time.RFC3339)})
}

func (s *Server) logout(c echo.Context) error {
	if err := sameOrigin(c, false); err != nil {
		return err
	}
	if ck, err := c.Cookie(sessionCookie); err == nil {
		s.sessions.remove(ck.Value)
	}
	c.SetCookie(&http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, Expires: time.Unix(0, 0),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.Scheme() == "https"})
	return c.JSON(http.StatusOK, map[string]any{"loggedOut": true})
}

// cookieSession reports whether the request carries a live session cookie.
func (s *Server) cookieSession(c echo.Context) bool {
	ck, err := c.Cookie(sessionCookie)
	return err == nil && ck.Value != "" && s.sessions.valid(ck.Value)
}

// unsafeMethod: methods that change something, which a cookie alone must not authorize from
// another site.
func unsafeMethod(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

// sameOrigin checks that a request comes from a page of this server: its Origin names this
// host (scheme and host:port), or, without an Origin, the browser says Sec-Fetch-Site:
// same-origin. required=false lets requests with neither through (curl logging in).
func sameOrigin(c echo.Context, required bool) error {
	req := c.Request()
	origin := req.Header.Get("Origin")
	if origin == "" {
		switch site := req.Header.Get("Sec-Fetch-Site"); {
		case site == "same-origin":
			return nil
		case site == "" && !required:
			return nil
		}
		return vocab.Errorf(codeForbidden, "a request authenticated by the session cookie that changes something must come from this server's pages (send Origin, or use Authorization: Bearer)")
	}
	u, err := url.Parse(origin)
	if err != nil || !strings.EqualFold(u.Scheme, c.Scheme()) || !strings.EqualFold(u.Host, req.Host) {
		return vocab.Errorf(codeForbidden, "origin %q is not this server (%s://%s): cross-site requests cannot use the session cookie", origin, c.Scheme(), req.Host)
	}
	return nil
}
