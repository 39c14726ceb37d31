package web

// The route sweep: every route echo has registered answers a table of rows — its own (wrong
// types, missing fields, unknown names, side effects) and the rows every route must pass
// (authentication, origin checks, oversized bodies, hostile path parameters, a wrong method).
// The routes come from the router, not from a list here: a route added without its rows fails
// TestRoutesTable, and so does a table entry whose route went. Every error row checks the one
// error body of web/errors.go: {"error": {"code", "message"[, "details"]}} with the status of
// its code.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/backends"
)

// sweepMaxBody is the body limit of the sweep's server; bodies past it must answer 413.
const sweepMaxBody = 1 << 16

// authKind is how a row authenticates.
type authKind int

const (
	authBearer          authKind = iota // Authorization: Bearer <the token>
	authNone                            // nothing
	authBadBearer                       // Authorization: Bearer <another token>
	authOtherScheme                     // Authorization: Basic … (not a bearer)
	authEmptyBearer                     // Authorization: "Bearer " and nothing after
	authCookie                          // the session cookie, no Origin
	authCookieSame                      // the session cookie, Origin of this server
	authCookieCross                     // the session cookie, Origin of another site
	authBadBearerCookie                 // a wrong bearer beside a valid cookie: the bearer decides
	authForgedCookie                    // a cookie that is no session
)

var authNames = map[authKind]string{
	authBearer: "bearer", authNone: "no auth", authBadBearer: "wrong bearer", authOtherScheme: "basic auth",
	authEmptyBearer: "empty bearer", authCookie: "cookie without Origin", authCookieSame: "cookie same origin",
	authCookieCross: "cookie cross-origin", authBadBearerCookie: "wrong bearer and cookie", authForgedCookie: "forged cookie",
}

// routeCase is one row: a request and what it must answer.
type routeCase struct {
	name    string
	method  string // default: the route's
	path    string
	body    string
	stream  bool // send the body without a Content-Length (chunked)
	auth    authKind
	cookie  string // the session cookie the cookie kinds send; default: the sweep's
	headers map[string]string

	want     int      // the status
	wantAny  []int    // or one of these
	code     string   // the error code (error rows); checked against the status either way
	in       []string // substrings of the body
	notIn    []string // strings the body must not hold
	jsonBody bool     // a success body must be JSON

	setup     func(t *testing.T)                                 // before the request
	check     func(t *testing.T, rec *httptest.ResponseRecorder) // after it: the side effect
	unchanged func(t *testing.T)                                 // for rows derived from ok() that are refused: nothing happened
}

// routeSpec is a route's rows.
type routeSpec struct {
	// public: the route answers without a token (health, openapi, session, the editor's files).
	public bool
	// readsBody: the route reads a request body, so a streamed oversized one must answer 413.
	readsBody bool
	// ok is a request that succeeds, made fresh for each derived row (a fresh resource, a fresh
	// name). Its check runs when a derived row is let through, its unchanged when one is refused.
	ok func() routeCase
	// rows are the route's own rows.
	rows []routeCase
	// hostile is what a hostile value of each path parameter answers (default 400 or 404).
	hostile map[string][]int
}

// sweep is the fixture every row runs against: one host on embedded backends with hot reload
// and the event center on, its server, and what the seed requests left (ids of a logged event,
// a dead letter, a task, a model row).
type sweep struct {
	t      *testing.T
	host   *host.Host
	srv    *Server
	h      http.Handler
	dir    string
	cookie string
	seq    atomic.Int64

	reqID, nodeID string // an event OnShop handled
	deadNode      string // an event OnShop failed on (retry none: a dead letter)
	deadReq       string
	taskID        string // a waiting task of tasks.Once
	rowID         string // a row of models.Item
}

// sweepApp has one element of each kind a route reaches.
var sweepApp = map[string]string{
	"app.json":                `{"name": "sweep", "title": "Route sweep"}`,
	"services/MathSvc/e.json": `{"title": "Math", "type": "services.NormalType"}`,
	"services/MathSvc/index.js": `
exports.add = function (a, b) { console.log("adding"); return a + b; };
exports.echo = function (x) { return x; };
exports.boom = function () { throw new Error("kaboom"); };
exports.odd = function () { return {inf: 1 / 0, nan: NaN, list: [-1 / 0, 1]}; };
exports.boomOdd = function () { var e = new Error("odd"); e.details = {v: 1 / 0}; throw e; };
`,
	"events/OnShop/e.json": `{"title": "On shop", "type": "events.NormalType", "sender": "shop", "retry": {"policy": "none"}}`,
	"events/OnShop/index.js": `exports.handle = function (event) {
  if (event.kwargs.fail) { throw new Error("told to fail"); }
  if (event.kwargs.odd) { return {v: NaN, w: [1 / 0, 2]}; }
  return event.kwargs.n;
};`,
	"tasks/Once/e.json":   `{"title": "Once", "type": "tasks.NormalType", "funcName": "run"}`,
	"tasks/Once/index.js": `exports.run = function (argDict) { return argDict.n + 1; };`,
	"tasks/Toggle/e.json": `{
  "title": "Toggle",
  "type": "tasks.NormalType",
  "funcName": "run"
}`,
	"tasks/Toggle/index.js": `exports.run = function () { return 1; };`,
	"models/Item/e.json":    `{"title": "Item", "type": "models.NormalType", "fields": [{"name": "name", "type": "Stext"}, {"name": "qty", "type": "Integer"}]}`,
}

func newSweep(t *testing.T) *sweep {
	t.Helper()
	dir := writeApp(t, sweepApp)
	h, err := host.New(host.Config{AppDir: dir, Sandbox: host.SandboxInProcess, Workers: 1, Watch: true, ServeEvents: true,
		MaxBodyBytes: sweepMaxBody}, backends.Open)
	require.NoError(t, err)
	require.NoError(t, h.Start(context.Background()))
	t.Cleanup(func() { _ = h.Stop(context.Background()) })
	srv, err := New(depsOf(h), Options{Token: testToken, MaxBodyBytes: sweepMaxBody})
	require.NoError(t, err)
	f := &sweep{t: t, host: h, srv: srv, h: srv.Handler(), dir: dir}
	f.cookie = f.login(t)
	f.seed(t)
	return f
}

// uniq is a fresh name suffix.
func (f *sweep) uniq() string { return fmt.Sprint(f.seq.Add(1)) }

// login opens a browser session and answers its cookie.
func (f *sweep) login(t *testing.T) string {
	t.Helper()
	rec := f.do(t, routeCase{method: "POST", path: "/api/session", body: `{"token": "` + testToken + `"}`, auth: authNone,
		headers: map[string]string{"Origin": "http://example.com"}})
	require.Equal(t, 200, rec.Code, rec.Body.String())
	for _, c := range rec.Result().Cookies() {
		if c.Name == sessionCookie && c.Value != "" {
			return c.Value
		}
	}
	t.Fatalf("POST /api/session set no cookie: %v", rec.Header().Values("Set-Cookie"))
	return ""
}

// seed sends one event OnShop handles and one it fails on, creates a task and a model row.
func (f *sweep) seed(t *testing.T) {
	t.Helper()
	send := func(kwargs string) (req, node string) {
		out := f.json(t, "POST", "/api/events/send", `{"sender": "shop", "kwargs": `+kwargs+`}`)
		nodes := out["nodeIds"].([]any)
		require.Len(t, nodes, 1, "OnShop hears shop: %v", out)
		return out["requestId"].(string), nodes[0].(string)
	}
	f.reqID, f.nodeID = send(`{"n": 1, "marker": "seed-ok"}`)
	f.deadReq, f.deadNode = send(`{"fail": true, "marker": "seed-dead"}`)
	f.waitLogged(t, "kwargs.marker=seed-ok&status=success", 1)
	f.waitLogged(t, "kwargs.marker=seed-dead&stage=deadLettered", 1)

	task := f.json(t, "POST", "/api/tasks", f.taskBody(`{"n": 1}`))
	f.taskID = task["taskId"].(string)
	row := f.json(t, "POST", "/api/models/models.Item/rows", `{"name": "seed", "qty": 1}`)
	f.rowID = fmt.Sprint(row["id"])
}

// taskBody is a valid createTimerTask body for tasks.Once an hour from now.
func (f *sweep) taskBody(argDict string) string {
	return fmt.Sprintf(`{"fullName": "tasks.Once", "startTime": %d, "funcName": "run", "taskType": "tasks.NormalType", "argDict": %s}`,
		time.Now().Add(time.Hour).UnixMilli(), argDict)
}

// json makes a bearer request that must answer 200 and answers its JSON object.
func (f *sweep) json(t *testing.T, method, path, body string) map[string]any {
	t.Helper()
	rec := f.do(t, routeCase{method: method, path: path, body: body})
	require.Contains(t, []int{200, 201}, rec.Code, "%s %s → %s", method, path, rec.Body.String())
	var m map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &m), rec.Body.String())
	return m
}

// loggedResult is the result of the latest state of the one node the log query finds.
func (f *sweep) loggedResult(t *testing.T, query string) string {
	t.Helper()
	require.NoError(t, f.host.LogWriter().Flush(context.Background()))
	rec := f.do(t, routeCase{method: "GET", path: "/api/events/logs?" + query})
	require.Equal(t, 200, rec.Code, rec.Body.String())
	var page struct {
		RowDatas []struct {
			Result json.RawMessage `json:"result"`
		} `json:"rowDatas"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &page))
	require.Len(t, page.RowDatas, 1, "one node for %s: %s", query, rec.Body.String())
	return string(page.RowDatas[0].Result)
}

// logCount is how many nodes the log query finds (after flushing the writer).
func (f *sweep) logCount(t *testing.T, query string) int {
	t.Helper()
	require.NoError(t, f.host.LogWriter().Flush(context.Background()))
	return int(f.json(t, "GET", "/api/events/logs?"+query, "")["totalCount"].(float64))
}

func (f *sweep) waitLogged(t *testing.T, query string, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return f.logCount(t, query) >= n }, 20*time.Second, 20*time.Millisecond, "log rows for %s", query)
}

// do sends one request as the row says.
func (f *sweep) do(t *testing.T, c routeCase) *httptest.ResponseRecorder {
	t.Helper()
	var body io.Reader = strings.NewReader(c.body)
	if c.stream {
		body = io.MultiReader(strings.NewReader(c.body)) // not a *strings.Reader: no length known
	}
	req := httptest.NewRequest(c.method, c.path, body) // Host: example.com
	if c.stream {
		req.ContentLength = -1
	}
	cookie := f.cookie
	if c.cookie != "" {
		cookie = c.cookie
	}
	switch c.auth {
	case authBearer:
		req.Header.Set("Authorization", "Bearer "+testToken)
	case authBadBearer:
		req.Header.Set("Authorization", "Bearer not-"+testToken)
	case authOtherScheme:
		req.Header.Set("Authorization", "Basic "+testToken)
	case authEmptyBearer:
		req.Header.Set("Authorization", "Bearer ")
	case authCookie:
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: cookie})
	case authCookieSame:
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: cookie})
		req.Header.Set("Origin", "http://example.com")
	case authCookieCross:
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: cookie})
		req.Header.Set("Origin", "http://evil.example")
	case authBadBearerCookie:
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: cookie})
		req.Header.Set("Authorization", "Bearer not-"+testToken)
	case authForgedCookie:
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: "forged-" + testToken})
	}
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

// runCase runs a row and checks everything it asks.
func (f *sweep) runCase(t *testing.T, c routeCase) {
	t.Helper()
	if c.setup != nil {
		c.setup(t)
	}
	rec := f.do(t, c)
	body := rec.Body.String()
	label := fmt.Sprintf("%s %s (%s) → %d %s", c.method, shorten(c.path), authNames[c.auth], rec.Code, shorten(body))
	if rec.Code >= 500 && rec.Code != c.want && !containsInt(c.wantAny, rec.Code) {
		t.Fatalf("a 5xx no row asked for: %s", label)
	}
	if len(c.wantAny) > 0 {
		require.Contains(t, c.wantAny, rec.Code, label)
	} else {
		require.Equal(t, c.want, rec.Code, label)
	}
	for _, s := range c.in {
		require.Contains(t, body, s, label)
	}
	for _, s := range c.notIn {
		require.NotContains(t, body, s, label)
	}
	if rec.Code >= 400 {
		if c.method != http.MethodHead {
			code := requireErrorBody(t, rec, label)
			if c.code != "" {
				require.Equal(t, c.code, code, label)
			}
		}
		if c.unchanged != nil {
			c.unchanged(t)
		}
		return
	}
	if c.jsonBody {
		require.True(t, json.Valid(rec.Body.Bytes()), "a JSON body: %s", label)
		require.True(t, strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json"), label)
	}
	if c.check != nil {
		c.check(t, rec)
	}
}

// requireErrorBody holds an error answer to the one shape of web/errors.go and answers its code.
func requireErrorBody(t *testing.T, rec *httptest.ResponseRecorder, label string) string {
	t.Helper()
	require.True(t, strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json"), "errors are JSON: %s", label)
	var top map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &top), "errors are a JSON object: %s", label)
	require.Len(t, top, 1, "one key, error: %s", label)
	var e map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(top["error"], &e), "error is an object: %s", label)
	for k := range e {
		require.Contains(t, []string{"code", "message", "details"}, k, "error has code, message and details only: %s", label)
	}
	var code, msg string
	require.NoError(t, json.Unmarshal(e["code"], &code), "code is a string: %s", label)
	require.NoError(t, json.Unmarshal(e["message"], &msg), "message is a string: %s", label)
	require.NotEmpty(t, code, label)
	require.NotEmpty(t, msg, label)
	if d, ok := e["details"]; ok {
		require.NotEqual(t, "null", string(d), "details are left out rather than null: %s", label)
	}
	status, known := statusOfCode[code]
	require.True(t, known, "code %q is one of the table's: %s", code, label)
	require.Equal(t, status, rec.Code, "the status is the code's: %s", label)
	return code
}

func containsInt(list []int, n int) bool {
	for _, v := range list {
		if v == n {
			return true
		}
	}
	return false
}

func shorten(s string) string {
	if len(s) > 300 {
		return s[:300] + fmt.Sprintf("…(%d bytes)", len(s))
	}
	return s
}

// routeKey names a registered route as the table does.
func routeKey(method, path string) string { return method + " " + path }

// anyMethod keys a table entry that serves every method of a path (echo's Any).
const anyMethod = "ANY"

// hostileValues are path parameter values that must get a clear 4xx, never a 5xx nor a file.
var hostileValues = []struct{ name, raw string }{
	{"dot-dot", ".."},
	{"dot", "."},
	{"encoded traversal", "..%2F..%2Fetc%2Fpasswd"},
	{"encoded dots", "%2e%2e"},
	{"encoded dots and slashes", "%2e%2e%2f%2e%2e%2fetc%2fpasswd"},
	{"absolute path", "%2Fetc%2Fpasswd"},
	{"windows path", "C:%5CWindows%5Cwin.ini"},
	{"backslash traversal", "..%5C..%5Cx"},
	{"NUL inside", "a%00b"},
	{"NUL alone", "%00"},
	{"newline", "a%0Ab"},
	{"space", "a%20b"},
	{"non-ASCII", "%C3%A9l%C3%A9ment"},
	{"very long", strings.Repeat("a", 5000)},
	{"very long dotted", strings.Repeat("abc.", 1500) + "x"},
	{"double encoded", "%252e%252e%252f"},
}

// methodsToTry are the methods a wrong-method row picks from.
var methodsToTry = []string{"GET", "POST", "PUT", "PATCH", "DELETE"}

// derivedRows are the rows every route must pass, made from its ok request.
func derivedRows(f *sweep, method, pattern string, sp routeSpec, registered map[string]map[string]bool) []routeCase {
	var rows []routeCase
	ok := func(name string, auth authKind) routeCase {
		c := sp.ok()
		c.name, c.auth = name, auth
		if c.method == "" {
			c.method = method
		}
		return c
	}
	unsafe := method != anyMethod && unsafeMethod(method) // the ok row of echo's Any is a GET
	refuse := func(c routeCase, status int, code string, in ...string) routeCase {
		c.want, c.wantAny, c.code, c.in, c.notIn, c.check = status, nil, code, in, nil, nil
		return c
	}

	// Authentication.
	rows = append(rows, ok("auth: bearer", authBearer))
	for _, a := range []authKind{authNone, authBadBearer, authOtherScheme, authEmptyBearer, authBadBearerCookie, authForgedCookie} {
		c := ok("auth: "+authNames[a], a)
		if !sp.public {
			c = refuse(c, 401, "unauthorized")
		}
		rows = append(rows, c)
	}
	// A control byte in the token (NUL…): the listener renames the header (headerguard.go), and
	// every route, public or not, answers 401 in the one error body.
	nul := ok("auth: a control byte in the token", authNone)
	nul.headers = map[string]string{invalidHeader: "Authorization"}
	rows = append(rows, refuse(nul, 401, "unauthorized", "control byte"))
	switch {
	case unsafe && sp.public:
		// Logging in and out: no Origin is curl, which may; another site may not.
		rows = append(rows, ok("auth: cookie without Origin", authCookie), ok("auth: cookie same origin", authCookieSame),
			refuse(ok("auth: cookie cross-origin", authCookieCross), 403, codeForbidden, "evil.example"))
	case unsafe:
		rows = append(rows, ok("auth: cookie same origin", authCookieSame),
			refuse(ok("auth: cookie without Origin for a change", authCookie), 403, codeForbidden),
			refuse(ok("auth: cookie cross-origin for a change", authCookieCross), 403, codeForbidden, "evil.example"))
	default:
		// Reads: the cookie is enough; a cross-origin read is SameSite's and CORS's to stop.
		rows = append(rows, ok("auth: cookie", authCookie), ok("auth: cookie same origin", authCookieSame), ok("auth: cookie cross-origin read", authCookieCross))
	}

	// Oversized bodies: 413 whatever the route, declared or streamed.
	big := `{"x": "` + strings.Repeat("a", sweepMaxBody) + `"}`
	c := ok("oversized body, declared", authBearer)
	c.body = big
	rows = append(rows, refuse(c, 413, "body_too_large"))
	if sp.readsBody {
		c := ok("oversized body, streamed", authBearer)
		c.body, c.stream = big, true
		rows = append(rows, refuse(c, 413, "body_too_large"))
	}

	// Hostile path parameters.
	params := patternParams(pattern)
	for i, name := range params {
		for _, hv := range hostileValues {
			c := ok(fmt.Sprintf("hostile %s: %s", name, hv.name), authBearer)
			c.path = withParam(pattern, c.path, i, hv.raw)
			want := sp.hostile[name]
			if want == nil {
				want = []int{400, 404}
			}
			c = refuse(c, 0, "")
			c.wantAny = want
			c.notIn = []string{"root:", "[extensions]"}
			rows = append(rows, c)
		}
	}

	// A method the path does not serve.
	if method != anyMethod {
		for _, m := range methodsToTry {
			if registered[pattern][m] || registered[pattern][anyMethod] {
				continue
			}
			c := ok("wrong method "+m, authBearer)
			c.method = m
			c = refuse(c, 0, "")
			c.wantAny = []int{404, 405}
			rows = append(rows, c)
			break
		}
	}
	return rows
}

// patternParams are the names of a pattern's parameters, in order ("*" for a wildcard).
func patternParams(pattern string) []string {
	var out []string
	for _, seg := range strings.Split(pattern, "/") {
		switch {
		case strings.HasPrefix(seg, ":"):
			out = append(out, seg[1:])
		case seg == "*":
			out = append(out, "*")
		}
	}
	return out
}

// withParam is path (a request of pattern) with its i-th parameter replaced by raw.
func withParam(pattern, path string, i int, raw string) string {
	p, query, hasQuery := strings.Cut(path, "?")
	pat := strings.Split(pattern, "/")
	segs := strings.Split(p, "/")
	n := 0
	for j, seg := range pat {
		if !strings.HasPrefix(seg, ":") && seg != "*" {
			continue
		}
		if n == i {
			if seg == "*" {
				segs = append(segs[:j], raw) // the rest of the path
			} else {
				segs[j] = raw
			}
			break
		}
		n++
	}
	out := strings.Join(segs, "/")
	if hasQuery {
		out += "?" + query
	}
	return out
}

// TestRoutesTable runs every route's rows; a registered route without rows fails it.
func TestRoutesTable(t *testing.T) {
	t.Parallel()
	f := newSweep(t)
	table := sweepTable(f)

	registered := map[string]map[string]bool{}
	var keys []string
	seen := map[string]bool{}
	for _, r := range f.srv.echo.Routes() {
		if registered[r.Path] == nil {
			registered[r.Path] = map[string]bool{}
		}
		registered[r.Path][r.Method] = true
	}
	for path, methods := range registered {
		if len(methods) >= len(methodsAll()) {
			// echo's Any: one entry for every method.
			keys = append(keys, routeKey(anyMethod, path))
			registered[path] = map[string]bool{anyMethod: true}
			continue
		}
		for m := range methods {
			keys = append(keys, routeKey(m, path))
		}
	}
	sort.Strings(keys)
	var missing []string
	for _, k := range keys {
		seen[k] = true
		if _, ok := table[k]; !ok {
			missing = append(missing, k)
		}
	}
	var stale []string
	for k := range table {
		if !seen[k] {
			stale = append(stale, k)
		}
	}
	sort.Strings(stale)
	require.Empty(t, missing, "routes without rows in sweepTable (web/routes_table_rows_test.go): add their rows")
	require.Empty(t, stale, "rows of routes that are not registered")

	total := 0
	for _, k := range keys {
		sp := table[k]
		method, pattern, _ := strings.Cut(k, " ")
		rows := append([]routeCase{}, sp.rows...)
		if sp.ok != nil {
			rows = append(rows, derivedRows(f, method, pattern, sp, registered)...)
		}
		require.NotEmpty(t, sp.rows, "%s has rows of its own", k)
		t.Run(k, func(t *testing.T) {
			for _, c := range rows {
				if c.method == "" {
					c.method = method
					if method == anyMethod {
						c.method = "GET"
					}
				}
				t.Run(c.name, func(t *testing.T) { f.runCase(t, c) })
			}
		})
		total += len(rows)
	}
	t.Logf("%d routes, %d rows", len(keys), total)
}

// methodsAll are the methods echo's Any registers.
func methodsAll() []string {
	return []string{"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PROPFIND", "PUT", "TRACE", "REPORT"}
}

// Helpers for side-effect checks.

func (f *sweep) requireFile(t *testing.T, rel, contains string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.dir, filepath.FromSlash(rel)))
	require.NoError(t, err, "%s was written", rel)
	require.Contains(t, string(b), contains)
}

func (f *sweep) requireNoPath(t *testing.T, rel string) {
	t.Helper()
	_, err := os.Lstat(filepath.Join(f.dir, filepath.FromSlash(rel)))
	require.True(t, os.IsNotExist(err), "%s must not exist (%v)", rel, err)
}

// writeElement puts an element on disk by hand, as an editor of the files would.
func (f *sweep) writeElement(t *testing.T, rel string, files map[string]string) {
	t.Helper()
	for name, text := range files {
		p := filepath.Join(f.dir, filepath.FromSlash(rel), name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	}
}

func decodeRec(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &m), rec.Body.String())
	return m
}

// TestErrorBodyUnwritableDetails: an error whose details cannot be written as JSON still answers
// its status and the one error body, without the details (echo used to leave an empty 200).
func TestErrorBodyUnwritableDetails(t *testing.T) {
	t.Parallel()
	e := echo.New()
	e.JSONSerializer = finiteJSON{}
	rec := httptest.NewRecorder()
	c := e.NewContext(httptest.NewRequest("GET", "/", nil), rec)
	writeError(&apiError{Status: 422, Code: "js_error", Message: "boom", Details: struct{ C chan int }{make(chan int)}}, c)
	require.Equal(t, 422, rec.Code)
	require.Equal(t, "js_error", requireErrorBody(t, rec, "unwritable details"))
	require.Contains(t, rec.Body.String(), "details left out")

	// NaN and infinities of the value model are written as null, at any depth.
	rec = httptest.NewRecorder()
	c = e.NewContext(httptest.NewRequest("GET", "/", nil), rec)
	writeError(&apiError{Status: 422, Code: "js_error", Message: "odd", Details: map[string]any{"a": []any{math.Inf(1), map[string]any{"b": math.NaN()}}}}, c)
	require.Equal(t, 422, rec.Code)
	require.JSONEq(t, `{"error": {"code": "js_error", "message": "odd", "details": {"a": [null, {"b": null}]}}}`, rec.Body.String())
}
