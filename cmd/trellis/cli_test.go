package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// trellisBin is the CLI built once for every test of this file: the tests drive it exactly as
// a user does, worker processes included.
var trellisBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "trellis-cli-test")
	if err != nil {
		panic(err)
	}
	trellisBin = filepath.Join(dir, "trellis")
	build := exec.Command("go", "build", "-o", trellisBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build trellis:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type cliResult struct {
	stdout, stderr string
	code           int
}

func trellis(t *testing.T, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(trellisBin, args...)
	cmd.Env = append(os.Environ(), "TRELLIS_WORKERS=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return cliResult{out.String(), errb.String(), code}
}

func initApp(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "demo")
	r := trellis(t, "init", dir)
	require.Equal(t, 0, r.code, r.stderr)
	return dir
}

func TestInitCheckCall(t *testing.T) {
	t.Parallel()
	dir := initApp(t)
	r := trellis(t, "check", "--app", dir)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "ok")

	r = trellis(t, "call", "--app", dir, "services.GreetingSvc.hello", `{"name": "Ada"}`)
	require.Equal(t, 0, r.code, r.stderr)
	var res map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &res))
	require.Equal(t, "Hello, Ada!", res["message"])
	require.Contains(t, r.stderr, "[log] greeting Ada")

	r = trellis(t, "call", "--app", dir, "services.GreetingSvc.templates", `{}`)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, `"fullName": "tasks.DailyReport"`)
	require.Contains(t, r.stdout, `"repeatType": "dateField"`)

	r = trellis(t, "init", dir)
	require.NotEqual(t, 0, r.code, "init refuses a non-empty directory")
	require.Contains(t, r.stderr, "not empty")
}

func write(t *testing.T, path, text string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		mutate func(dir string)
		args   func(dir string) []string
		want   []string
	}{
		{"malformed e.json", func(dir string) {
			write(t, filepath.Join(dir, "services/GreetingSvc/e.json"), "{\n  \"title\": \"x\",\n  \"type\": \n}")
		}, func(dir string) []string { return []string{"check", "--app", dir} },
			[]string{"services/GreetingSvc/e.json:4:"}},
		{"syntax error names file and line", func(dir string) {
			write(t, filepath.Join(dir, "services/GreetingSvc/index.js"), "exports.hello = function () {\n  return 1 +;\n};\n")
		}, func(dir string) []string { return []string{"call", "--app", dir, "services.GreetingSvc.hello", "{}"} },
			[]string{"services/GreetingSvc/index.js:2:"}},
		{"unknown element", nil, func(dir string) []string { return []string{"call", "--app", dir, "services.Nope.hello", "{}"} },
			[]string{"services.Nope"}},
		{"missing function", nil, func(dir string) []string { return []string{"call", "--app", dir, "services.GreetingSvc.nope", "{}"} },
			[]string{`no function "nope"`, "hello"}},
		{"argument not JSON", nil, func(dir string) []string {
			return []string{"call", "--app", dir, "services.GreetingSvc.hello", "{name:"}
		},
			[]string{"not valid JSON"}},
		{"argument a scalar", nil, func(dir string) []string { return []string{"call", "--app", dir, "services.GreetingSvc.hello", "7"} },
			[]string{"JSON object"}},
		{"built-in with wrong argument type", nil, func(dir string) []string {
			return []string{"call", "--app", dir, "services.TaskSvc.getTaskTmplList", "[1]"}
		}, []string{`argument "queryStr" must be a string`}},
		{"no such app", nil, func(dir string) []string { return []string{"check", "--app", filepath.Join(dir, "missing")} },
			[]string{"missing", "trellis init"}},
		{"unknown type", func(dir string) {
			write(t, filepath.Join(dir, "services/GreetingSvc/e.json"), `{"title": "x", "type": "services.NoSuchType"}`)
		}, func(dir string) []string { return []string{"call", "--app", dir, "services.GreetingSvc.hello", "{}"} },
			[]string{"services.NoSuchType"}},
		{"bad call target", nil, func(dir string) []string { return []string{"call", "--app", dir, "nodot", "{}"} },
			[]string{"services.X.fn"}},
		{"db not postgres", nil, func(dir string) []string {
			return []string{"serve", "--app", dir, "--db", "mysql://x"}
		}, []string{"--db", "PostgreSQL URL"}},
		{"db unreachable", nil, func(dir string) []string {
			return []string{"serve", "--app", dir, "--db", "postgres://trellis@127.0.0.1:1/x?connect_timeout=2"}
		}, []string{"--db", "cannot connect"}},
		{"bad timeout flag", nil, func(dir string) []string {
			return []string{"call", "--app", dir, "--timeout", "soon", "services.GreetingSvc.hello"}
		}, []string{"--timeout"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := initApp(t)
			if tc.mutate != nil {
				tc.mutate(dir)
			}
			r := trellis(t, tc.args(dir)...)
			require.NotEqual(t, 0, r.code, "stdout: %s", r.stdout)
			for _, w := range tc.want {
				require.Contains(t, r.stderr, w)
			}
		})
	}
}

func TestCheckReportsEveryProblem(t *testing.T) {
	t.Parallel()
	dir := initApp(t)
	write(t, filepath.Join(dir, "services/GreetingSvc/index.js"), "exports.hello = function () {\n  return 1 +;\n};\n")
	write(t, filepath.Join(dir, "tasks/DailyReport/e.json"), `{"title": "x", "type": "tasks.NormalType", "repeatType": "cron", "cron": "not a cron", "funcName": "run"}`)
	write(t, filepath.Join(dir, "events/GreetingSent/e.json"), `{"title": "x", "type": "events.NormalType", "sender": "a", "bogusField": 1}`)
	r := trellis(t, "check", "--app", dir)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "services/GreetingSvc/index.js:2:")
	require.Contains(t, r.stderr, "tasks/DailyReport/e.json:1:")
	require.Contains(t, r.stderr, "bogusField")
}

// TestCheckWarnsAboutHooks: a hook exported without needRunHook, and needRunHook with no hook,
// are warnings with their position; they are printed, and check still exits 0. The sample app
// itself (whose OrderCreated listener has hooks) has none.
func TestCheckWarnsAboutHooks(t *testing.T) {
	t.Parallel()
	dir := initApp(t)
	r := trellis(t, "check", "--app", dir)
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	require.NotContains(t, r.stderr, "warning")
	write(t, filepath.Join(dir, "events/GreetingSent/index.js"), "exports.handle = function () {};\nexports.node_finish = function (data) {};\n")
	write(t, filepath.Join(dir, "tasks/DailyReport/e.json"), `{"title": "x", "type": "tasks.NormalType", "repeatType": "cron", "cron": "0 8 * * *", "funcName": "services.GreetingSvc.hello",
  "needRunHook": true}`)
	r = trellis(t, "check", "--app", dir)
	require.Equal(t, 0, r.code, "warnings do not fail check; stderr: %s", r.stderr)
	require.Contains(t, r.stdout, ": ok")
	require.Contains(t, r.stderr, "events/GreetingSent/index.js:2:9: events.GreetingSent: warning: node_finish is exported as a hook but needRunHook is not true")
	require.Contains(t, r.stderr, "tasks/DailyReport/e.json:2:18: tasks.DailyReport: warning: needRunHook is true but the entry exports no hook")
}

func TestServe(t *testing.T) {
	t.Parallel()
	dir := initApp(t)
	cmd := exec.Command(trellisBin, "serve", "--app", dir, "--addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "TRELLIS_WORKERS=1", "TRELLIS_ADMIN_TOKEN=")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	lines := bufio.NewScanner(stdout)
	var base, token string
	for (base == "" || token == "") && lines.Scan() {
		l := lines.Text()
		if i := strings.Index(l, "http://"); i >= 0 && base == "" {
			base = strings.Fields(l[i:])[0]
		}
		if i := strings.Index(l, "admin token"); i >= 0 {
			token = l[strings.LastIndex(l, " ")+1:]
		}
	}
	require.NotEmpty(t, base)
	require.NotEmpty(t, token, "the generated token is printed on first start")
	stored, err := os.ReadFile(filepath.Join(dir, ".trellis", "admin-token"))
	require.NoError(t, err)
	require.Equal(t, token, strings.TrimSpace(string(stored)))

	get := func(path, tok string) (int, string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/api/health", "")
	require.Equal(t, 200, code, body)
	code, _ = get("/api/elements", "")
	require.Equal(t, 401, code)
	code, body = get("/api/elements", token)
	require.Equal(t, 200, code)
	require.Contains(t, body, "services.GreetingSvc")

	// Hot reload: a new function becomes callable without a restart.
	write(t, filepath.Join(dir, "services/GreetingSvc/index.js"),
		"exports.hello = function () { return 'v2'; };\nexports.templates = function () { return []; };\nexports.added = function () { return 'new'; };\n")
	require.Eventually(t, func() bool {
		req, _ := http.NewRequest("POST", base+"/api/services/services.GreetingSvc/added", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && strings.Contains(string(b), `"new"`)
	}, 10*time.Second, 20*time.Millisecond)

	// A broken edit never replaces the last good version: the host keeps serving it and reports
	// the problem with its position.
	write(t, filepath.Join(dir, "services/GreetingSvc/index.js"), "exports.hello = function () {\n  return 1 +;\n};\n")
	require.Eventually(t, func() bool {
		_, body := get("/api/health", "")
		return strings.Contains(body, `"status":"degraded"`)
	}, 10*time.Second, 20*time.Millisecond)
	code, body = get("/api/elements/services.GreetingSvc", token)
	require.Equal(t, 200, code)
	require.Contains(t, body, `"line":2`)
	req, _ := http.NewRequest("POST", base+"/api/services/services.GreetingSvc/added", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode, string(b))
	require.Contains(t, string(b), `"new"`, "the last good version still serves")
}

func TestLogsCommand(t *testing.T) {
	t.Parallel()
	dir := initApp(t)
	r := trellis(t, "call", "--app", dir, "services.GreetingSvc.hello", `{"name": "Log"}`)
	require.Equal(t, 0, r.code, r.stderr)

	r = trellis(t, "logs", "--app", dir, "--element", "services.GreetingSvc", "--since", "1h")
	require.Equal(t, 0, r.code, r.stderr)
	var page struct {
		TotalCount int64            `json:"totalCount"`
		RowDatas   []map[string]any `json:"rowDatas"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &page), r.stdout)
	require.EqualValues(t, 1, page.TotalCount)
	require.Equal(t, "success", page.RowDatas[0]["status"])
	req := page.RowDatas[0]["requestId"].(string)

	r = trellis(t, "logs", "--app", dir, "--request", req)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, `"kind": "service"`)

	r = trellis(t, "logs", "--app", dir, "--summary", "--since", "1d")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, `"fullName": "services.GreetingSvc"`)

	r = trellis(t, "logs", "--app", dir, "--timeseries", "--bucket", "1h", "--since", "6h")
	require.Equal(t, 0, r.code, r.stderr)

	for _, bad := range [][]string{
		{"--status", "done"}, {"--page", "0"}, {"--page-size", "5000"}, {"--since", "soon"},
		{"--start", "2024-02-01", "--end", "2024-01-01"}, {"--timeseries", "--bucket", "10s"}, {"--node", "x"},
		{"--kwargs", "novalue"},
	} {
		r = trellis(t, append([]string{"logs", "--app", dir}, bad...)...)
		require.NotEqual(t, 0, r.code, "%v must fail", bad)
		require.NotEmpty(t, r.stderr)
	}
}

// Settings come from flags, then the environment, then trellis.yaml (docs/reference.md §7).
func TestSettingsFromTrellisYAML(t *testing.T) {
	t.Parallel()
	dir := initApp(t)
	write(t, filepath.Join(dir, "services/Spin/e.json"), `{"title": "Spin", "type": "services.NormalType"}`)
	write(t, filepath.Join(dir, "services/Spin/index.js"), `exports.spin = function () { for (;;) {} };`)
	write(t, filepath.Join(dir, "trellis.yaml"), "timeout: 300ms\nsandbox: inprocess\n")

	start := time.Now()
	r := trellis(t, "call", "--app", dir, "services.Spin.spin")
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stderr, "error timeout")
	require.Less(t, time.Since(start), 20*time.Second, "the yaml timeout applied, not the 30 s default")

	r = trellis(t, "call", "--app", dir, "--timeout", "notaduration", "services.Spin.spin")
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, "--timeout", "a flag wins over trellis.yaml")

	write(t, filepath.Join(dir, "trellis.yaml"), "timeout: 300ms\nspeed: fast\n")
	r = trellis(t, "call", "--app", dir, "services.GreetingSvc.hello")
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, `unknown setting "speed"`)

	write(t, filepath.Join(dir, "trellis.yaml"), "timeout: [1, 2\n")
	r = trellis(t, "call", "--app", dir, "services.GreetingSvc.hello")
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, "not valid YAML")
}

func TestBenchEvents(t *testing.T) {
	t.Parallel()
	res := trellis(t, "bench", "events", "--events", "300", "--senders", "4", "--rate", "200", "--duration", "1s", "--sandbox", "inprocess", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	var rep struct {
		Events       int
		EventsPerSec float64
		Offered      int
		Measured     int
		P99          time.Duration
	}
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &rep), res.stdout)
	require.Equal(t, 300, rep.Events)
	require.Greater(t, rep.EventsPerSec, 0.0)
	require.Equal(t, 200, rep.Offered)
	require.Equal(t, 200, rep.Measured, "every event of the latency phase has its done row in the log")

	bad := trellis(t, "bench", "events", "--rate", "x")
	require.NotEqual(t, 0, bad.code)
	require.Contains(t, bad.stderr, "rate")
}
