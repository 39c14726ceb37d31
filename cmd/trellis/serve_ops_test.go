package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// syncBuffer is a bytes.Buffer a process writes to while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeOperations: serve with --log-format json writes JSON log lines (the access log among
// them, never the token), GET /metrics needs the token and counts the app's deliveries, and
// SIGTERM while a handler runs lets it finish: serve exits 0 and the node's last state is
// success, nothing left running.
func TestServeOperations(t *testing.T) {
	t.Parallel()
	dir := initApp(t)
	write(t, filepath.Join(dir, "events/Slow/e.json"), `{"title": "Slow", "type": "events.NormalType", "sender": "slow", "retry": {"policy": "none"}}`)
	write(t, filepath.Join(dir, "events/Slow/index.js"), `exports.handle = function () { var end = Date.now() + 1500; while (Date.now() < end) {} return "slept"; };`)
	const token = "ops-test-token-4711"
	cmd := exec.Command(trellisBin, "serve", "--app", dir, "--addr", "127.0.0.1:0", "--log-format", "json", "--shutdown-timeout", "30s")
	cmd.Env = append(os.Environ(), "TRELLIS_WORKERS=1", "TRELLIS_ADMIN_TOKEN="+token)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	exited := false
	t.Cleanup(func() {
		if !exited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	lines := bufio.NewScanner(stdout)
	var base string
	for base == "" && lines.Scan() {
		if i := strings.Index(lines.Text(), "http://"); i >= 0 {
			base = strings.Fields(lines.Text()[i:])[0]
		}
	}
	require.NotEmpty(t, base, "serve printed its address; stderr: %s", stderr.String())
	go func() { _, _ = io.Copy(io.Discard, stdout) }()

	do := func(method, path, body, tok string) (int, string) {
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		require.NoError(t, err)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}

	code, body := do("POST", "/api/events/send", `{"sender": "slow", "kwargs": {}}`, token)
	require.Equal(t, 200, code, body)
	var sent struct{ NodeIDs []string }
	require.NoError(t, json.Unmarshal([]byte(body), &sent))
	require.Len(t, sent.NodeIDs, 1)
	node := sent.NodeIDs[0]
	require.Eventually(t, func() bool {
		_, body := do("GET", "/api/events/nodes/"+node+"/attempts", "", token)
		return strings.Contains(body, `"status":"running"`)
	}, 20*time.Second, 20*time.Millisecond, "the handler runs")

	code, _ = do("GET", "/metrics", "", "")
	require.Equal(t, 401, code, "metrics need the token")
	code, body = do("GET", "/metrics", "", token)
	require.Equal(t, 200, code)
	require.Contains(t, body, `trellis_events_sent_total{listener="events.Slow"} 1`)

	// SIGTERM while the handler runs: it finishes, and serve exits 0.
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), "serve exits 0; stderr: %s", stderr.String())
	exited = true

	r := trellis(t, "logs", "--app", dir, "--attempts", node)
	require.Equal(t, 0, r.code, r.stderr)
	var rows []map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rows), r.stdout)
	require.NotEmpty(t, rows)
	last := rows[len(rows)-1]
	require.Equal(t, "success", last["status"], "the running handler finished before serve exited: %v", rows)
	require.Equal(t, "slept", last["result"])
	r = trellis(t, "logs", "--app", dir, "--status", "running")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, `"totalCount": 0`, "nothing left running")

	// The log: JSON lines, the access log and the stop among them, never the token.
	logs := stderr.String()
	require.NotContains(t, logs, token)
	var msgs []string
	access := false
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), "a JSON log line: %s", line)
		msgs = append(msgs, m["msg"].(string))
		if m["msg"] == "http request" && m["route"] == "/api/events/send" && m["status"] == float64(200) {
			access = true
		}
	}
	require.True(t, access, "an access log line for the send: %s", logs)
	require.Contains(t, msgs, "serving")
	require.Contains(t, msgs, "stopped")
}

// TestOperationsSettings: serve's log, metrics and shutdown settings, their defaults and the
// errors that name the flag.
func TestOperationsSettings(t *testing.T) {
	t.Parallel()
	defaults := map[string]string{}
	for _, s := range settings {
		defaults[s.flag] = s.def
	}
	o, err := operationsOf(defaults)
	require.NoError(t, err)
	require.Equal(t, operations{logFormat: "text", logLevel: slog.LevelInfo, shutdownTimeout: 30 * time.Second}, o)
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range defaults {
			m[a] = b
		}
		m[k] = v
		return m
	}
	o, err = operationsOf(with("log-format", "JSON"))
	require.NoError(t, err)
	require.Equal(t, "json", o.logFormat)
	o, err = operationsOf(with("log-level", "debug"))
	require.NoError(t, err)
	require.Equal(t, slog.LevelDebug, o.logLevel)
	o, err = operationsOf(with("metrics-public", "true"))
	require.NoError(t, err)
	require.True(t, o.metricsPublic)
	for k, v := range map[string]string{"log-format": "xml", "log-level": "loud", "metrics-public": "perhaps", "shutdown-timeout": "0s"} {
		_, err := operationsOf(with(k, v))
		require.ErrorContains(t, err, "--"+k, v)
	}
	r := trellis(t, "serve", "--app", initApp(t), "--log-format", "xml")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "--log-format must be text or json")
}
