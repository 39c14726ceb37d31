package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/backends"
)

// browserReq is one request as a browser sends it: the session cookie, and the headers given.
type browserReq struct {
	name, method, path, body string
	cookie                   string
	headers                  map[string]string
	wantStatus               int
	wantIn                   []string
}

func (b browserReq) do(t *testing.T, h http.Handler) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(b.method, b.path, strings.NewReader(b.body)) // Host: example.com
	if b.cookie != "" {
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: b.cookie})
	}
	for k, v := range b.headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, b.wantStatus, rec.Code, "%s %s → %s", b.method, b.path, rec.Body.String())
	for _, s := range b.wantIn {
		require.Contains(t, rec.Body.String(), s)
	}
	return rec
}

// testClock is a clock the test moves: sessions expire without waiting.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func setupSession(t *testing.T) (*Server, *testClock) {
	t.Helper()
	h, err := host.New(host.Config{AppDir: writeApp(t, testApp), Sandbox: host.SandboxInProcess}, backends.Open)
	require.NoError(t, err)
	require.NoError(t, h.Start(context.Background()))
	t.Cleanup(func() { _ = h.Stop(context.Background()) })
	srv, err := New(depsOf(h), Options{Token: testToken, SessionTTL: time.Hour})
	require.NoError(t, err)
	clock := &testClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	srv.sessions.now = clock.Now
	return srv, clock
}

// login posts the token and returns the session cookie it set.
func login(t *testing.T, h http.Handler) *http.Cookie {
	t.Helper()
	rec := browserReq{method: "POST", path: "/api/session", body: `{"token": "` + testToken + `"}`,
		headers: map[string]string{"Origin": "http://example.com"}, wantStatus: 200, wantIn: []string{`"expiresAt"`}}.do(t, h)
	var ck *http.Cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == sessionCookie {
			ck = c
		}
	}
	require.NotNil(t, ck, "POST /api/session sets the cookie")
	return ck
}

func TestSessionCookie(t *testing.T) {
	t.Parallel()
	srv, clock := setupSession(t)
	h := srv.Handler()
	ck := login(t, h)
	require.True(t, ck.HttpOnly)
	require.Equal(t, http.SameSiteStrictMode, ck.SameSite)
	require.Equal(t, "/", ck.Path)
	require.Equal(t, 3600, ck.MaxAge)
	require.NotContains(t, ck.Value, testToken, "the cookie is not the token")
	require.GreaterOrEqual(t, len(ck.Value), 40, "a random id")
	require.NotEqual(t, ck.Value, login(t, h).Value, "each login its own session")

	same := map[string]string{"Origin": "http://example.com"}
	for _, b := range []browserReq{
		{name: "read with the cookie", method: "GET", path: "/api/elements", cookie: ck.Value, wantStatus: 200, wantIn: []string{"services.MathSvc"}},
		{name: "read needs no Origin", method: "GET", path: "/api/elements/services.MathSvc", cookie: ck.Value, wantStatus: 200},
		{name: "change from this origin", method: "POST", path: "/api/services/services.MathSvc/add", body: `[1, 2]`, cookie: ck.Value, headers: same, wantStatus: 200, wantIn: []string{`"result":3`}},
		{name: "change with Sec-Fetch-Site same-origin", method: "POST", path: "/api/services/services.MathSvc/add", body: `[1, 2]`, cookie: ck.Value,
			headers: map[string]string{"Sec-Fetch-Site": "same-origin"}, wantStatus: 200},
		{name: "change without Origin", method: "POST", path: "/api/services/services.MathSvc/add", body: `[1, 2]`, cookie: ck.Value, wantStatus: 403, wantIn: []string{`"code":"forbidden"`}},
		{name: "change from another site", method: "POST", path: "/api/services/services.MathSvc/add", body: `[1, 2]`, cookie: ck.Value,
			headers: map[string]string{"Origin": "http://evil.example"}, wantStatus: 403, wantIn: []string{"evil.example"}},
		{name: "change from another scheme", method: "DELETE", path: "/api/elements/services.MathSvc?force=true", cookie: ck.Value,
			headers: map[string]string{"Origin": "https://example.com"}, wantStatus: 403},
		{name: "change from another port", method: "PUT", path: "/api/elements/services.X", body: `{}`, cookie: ck.Value,
			headers: map[string]string{"Origin": "http://example.com:8081"}, wantStatus: 403},
		{name: "opaque origin", method: "PATCH", path: "/api/models/models.X/rows/1", body: `{}`, cookie: ck.Value,
			headers: map[string]string{"Origin": "null"}, wantStatus: 403},
		{name: "cross-site fetch metadata", method: "POST", path: "/api/events/send", body: `{"sender": "a", "kwargs": {}}`, cookie: ck.Value,
			headers: map[string]string{"Sec-Fetch-Site": "cross-site"}, wantStatus: 403},
		{name: "bearer calls need no Origin", method: "POST", path: "/api/services/services.MathSvc/add", body: `[1, 2]`,
			headers: map[string]string{"Authorization": "Bearer " + testToken}, wantStatus: 200},
		{name: "a wrong bearer is not rescued by the cookie", method: "GET", path: "/api/elements", cookie: ck.Value,
			headers: map[string]string{"Authorization": "Bearer nope"}, wantStatus: 401},
		{name: "forged cookie", method: "GET", path: "/api/elements", cookie: "forged", wantStatus: 401},
		{name: "the token as cookie", method: "GET", path: "/api/elements", cookie: testToken, wantStatus: 401},
		{name: "wrong token", method: "POST", path: "/api/session", body: `{"token": "nope"}`, wantStatus: 401, wantIn: []string{"wrong token"}},
		{name: "no token", method: "POST", path: "/api/session", body: `{}`, wantStatus: 400},
		{name: "unknown field", method: "POST", path: "/api/session", body: `{"token": "x", "user": "a"}`, wantStatus: 400},
		{name: "login from another site", method: "POST", path: "/api/session", body: `{"token": "` + testToken + `"}`,
			headers: map[string]string{"Origin": "http://evil.example"}, wantStatus: 403},
	} {
		t.Run(b.name, func(t *testing.T) { b.do(t, h) })
	}

	// A session ends when it expires…
	clock.Add(59 * time.Minute)
	browserReq{method: "GET", path: "/api/elements", cookie: ck.Value, wantStatus: 200}.do(t, h)
	clock.Add(time.Minute)
	browserReq{method: "GET", path: "/api/elements", cookie: ck.Value, wantStatus: 401}.do(t, h)

	// …or on logout, which clears the cookie.
	ck2 := login(t, h)
	rec := browserReq{method: "DELETE", path: "/api/session", cookie: ck2.Value, headers: same, wantStatus: 200}.do(t, h)
	cleared := false
	for _, c := range rec.Result().Cookies() {
		cleared = cleared || (c.Name == sessionCookie && c.Value == "" && c.MaxAge < 0)
	}
	require.True(t, cleared, "logout clears the cookie: %v", rec.Header().Values("Set-Cookie"))
	browserReq{method: "GET", path: "/api/elements", cookie: ck2.Value, wantStatus: 401}.do(t, h)
}

func TestSessionStoreBounded(t *testing.T) {
	t.Parallel()
	s := newSessions(time.Hour)
	clock := &testClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	s.now = func() time.Time { clock.Add(time.Millisecond); return clock.Now() }
	first, _, err := s.create()
	require.NoError(t, err)
	for i := 0; i < maxSessions; i++ {
		_, _, err := s.create()
		require.NoError(t, err)
	}
	require.Len(t, s.byID, maxSessions)
	require.False(t, s.valid(first), "the oldest session made room")
}
