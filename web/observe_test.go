package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/backends"
	"github.com/trellis-run/trellis/host/metrics"
	"github.com/trellis-run/trellis/logstore/writer"
)

// lockedBuffer collects log lines written from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines are the JSON log lines written so far.
func (l *lockedBuffer) lines(t *testing.T) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), "a JSON log line: %s", line)
		out = append(out, m)
	}
	return out
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// findLine is the first log line with msg whose fields hold want.
func (l *lockedBuffer) findLine(t *testing.T, msg string, want map[string]any) map[string]any {
	for _, m := range l.lines(t) {
		if !strings.HasPrefix(fmt.Sprint(m["msg"]), msg) {
			continue
		}
		ok := true
		for k, v := range want {
			if fmt.Sprint(m[k]) != fmt.Sprint(v) {
				ok = false
			}
		}
		if ok {
			return m
		}
	}
	return nil
}

var observeApp = map[string]string{
	"app.json":               `{"name": "observed", "title": "Observed"}`,
	"events/OnShop/e.json":   `{"title": "On shop", "type": "events.NormalType", "sender": "shop", "retry": {"policy": "none"}}`,
	"events/OnShop/index.js": `exports.handle = function (event) { if (event.kwargs.fail) { throw new Error("told to fail"); } return 1; };`,
	"services/Hog/e.json":    `{"title": "Hog", "type": "services.NormalType", "timeout": "300ms"}`,
	// A backtracking regular expression is out of the interrupt's reach: its worker is killed.
	"services/Hog/index.js": `exports.hog = function () { return /^(?=a)(a+)+$/.test("a".repeat(40) + "b"); };`,
}

// metric is the value of one series of a scrape ("" labels: a series without labels); -1 when
// the scrape has no such series.
func metric(t *testing.T, scrape, name, labels string) float64 {
	t.Helper()
	series := name
	if labels != "" {
		series += "{" + labels + "}"
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(scrape)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	return v
}

// TestMetricsAndLogsFollowTheHost: a handled event moves its listener's counters on GET
// /metrics, a failed one the failure and dead-letter counters, and each writes its lines to the
// one logger the host and the server share: the access log (never the token), the handler
// failure, the dead letter, the sandbox worker kill and the hot reload.
func TestMetricsAndLogsFollowTheHost(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	coll := metrics.New()
	dir := writeApp(t, observeApp)
	h, err := host.New(host.Config{AppDir: dir, Sandbox: host.SandboxIsolated, Workers: 1, Watch: true, ServeEvents: true,
		Logger: logger, Metrics: coll}, backends.Open)
	require.NoError(t, err)
	require.NoError(t, h.Start(context.Background()))
	t.Cleanup(func() { _ = h.Stop(context.Background()) })
	coll.Watch(metrics.Sources{Lag: h.EventLag, Spool: func() (writer.Stats, bool) {
		if w := h.LogWriter(); w != nil {
			return w.Stats(), true
		}
		return writer.Stats{}, false
	}})
	srv, err := New(depsOf(h), Options{Token: testToken, Metrics: coll.Registry(), Logger: logger})
	require.NoError(t, err)
	handler := srv.Handler()
	do := func(method, path, body, token string) (int, string) {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	scrape := func() string {
		code, body := do("GET", "/metrics", "", testToken)
		require.Equal(t, 200, code, body)
		return body
	}
	const on = `listener="events.OnShop"`

	before := scrape()
	require.LessOrEqual(t, metric(t, before, "trellis_events_handled_total", on), 0.0, "nothing handled yet")

	code, body := do("POST", "/api/events/send", `{"sender": "shop", "kwargs": {"n": 1}}`, testToken)
	require.Equal(t, 200, code, body)
	require.Eventually(t, func() bool { return metric(t, scrape(), "trellis_events_handled_total", on) == 1 }, 20*time.Second, 20*time.Millisecond,
		"the handled event shows on /metrics")
	after := scrape()
	require.Equal(t, 1.0, metric(t, after, "trellis_events_sent_total", on))
	require.Equal(t, -1.0, metric(t, after, "trellis_events_failed_total", on))
	require.Equal(t, 1.0, metric(t, after, "trellis_execution_duration_seconds_count", `kind="event",status="success"`))
	require.GreaterOrEqual(t, metric(t, after, "trellis_log_spool_rows", ""), 0.0, "the spool's depth is there")
	require.GreaterOrEqual(t, metric(t, after, "trellis_listener_lag", `group="pool",`+on+`,state="undelivered"`), 0.0, "the listener's lag is there: %s", after)
	require.Equal(t, 1.0, metric(t, after, "trellis_listener_lag_up", ""))
	require.GreaterOrEqual(t, metric(t, after, "trellis_http_requests_total", `method="POST",route="/api/events/send",status="200"`), 1.0)
	require.Greater(t, metric(t, after, "go_goroutines", ""), 0.0)

	// A failure and its dead letter.
	code, body = do("POST", "/api/events/send", `{"sender": "shop", "kwargs": {"fail": true}}`, testToken)
	require.Equal(t, 200, code, body)
	require.Eventually(t, func() bool { return metric(t, scrape(), "trellis_dead_letters_total", on) == 1 }, 20*time.Second, 20*time.Millisecond)
	require.Equal(t, 1.0, metric(t, scrape(), "trellis_events_failed_total", on))
	dead := logs.findLine(t, "dead letter", map[string]any{"fullName": "events.OnShop", "level": "ERROR", "code": "js_error"})
	require.NotNil(t, dead, "a dead letter line: %s", logs.String())
	require.Contains(t, dead["error"], "told to fail")
	require.NotEmpty(t, dead["node"])

	// A worker killed past its deadline.
	code, body = do("POST", "/api/services/services.Hog/hog", ``, testToken)
	require.Equal(t, 422, code, body)
	require.Contains(t, body, `"code":"timeout"`)
	require.Eventually(t, func() bool {
		return logs.findLine(t, "sandbox worker killed", map[string]any{"code": "timeout", "level": "WARN"}) != nil
	}, 20*time.Second, 20*time.Millisecond,
		"a line for the worker: %s", logs.String())
	require.Equal(t, 1.0, metric(t, scrape(), "trellis_sandbox_worker_restarts_total", ""))
	require.Equal(t, 1.0, metric(t, scrape(), "trellis_sandbox_worker_kills_total", `code="timeout"`))

	// A hot reload, applied.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "events/OnShop/index.js"), []byte(`exports.handle = function () { return 2; };`), 0o644))
	require.Eventually(t, func() bool { return logs.findLine(t, "hot reload: applied", map[string]any{"app": "observed"}) != nil },
		20*time.Second, 20*time.Millisecond, "a line for the reload: %s", logs.String())

	// The access log: one line per request, the route's pattern, never the token.
	do("GET", "/api/elements/events.OnShop", "", "wrong-"+testToken)
	line := logs.findLine(t, "http request", map[string]any{"route": "/api/elements/:fullName", "status": 401, "method": "GET"})
	require.NotNil(t, line, logs.String())
	require.Equal(t, "/api/elements/events.OnShop", line["path"])
	require.Contains(t, line, "durationMs")
	require.NotContains(t, logs.String(), testToken, "no line holds the token")
}

// TestMetricsPublic: with MetricsPublic a scrape needs no token; the API still does.
func TestMetricsPublic(t *testing.T) {
	t.Parallel()
	srv, _ := startServer(t, Options{MetricsPublic: true})
	res, err := http.Get("http://" + srv.Addr() + "/metrics")
	require.NoError(t, err)
	_ = res.Body.Close()
	require.Equal(t, 200, res.StatusCode)
	res, err = http.Get("http://" + srv.Addr() + "/metrics") // the first scrape counted
	require.NoError(t, err)
	b, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	require.Equal(t, 200, res.StatusCode, string(b))
	require.Contains(t, string(b), "trellis_http_requests_total")
	res, err = http.Get("http://" + srv.Addr() + "/api/elements")
	require.NoError(t, err)
	_ = res.Body.Close()
	require.Equal(t, 401, res.StatusCode)
}
