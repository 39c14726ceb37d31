package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// init's hints name the binary the way the user ran it, so they can be pasted back: the README
// and `make run` use ./bin/trellis, which is not on PATH.
func TestInitHintNamesTheBinaryAsInvoked(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ argv0, dir, bin, app string }{
		{"./bin/trellis", "demo", "./bin/trellis", "demo"},
		{"trellis", "my demo", "trellis", "'my demo'"},
	} {
		cwd := t.TempDir()
		cmd := exec.Command(trellisBin, "init", tc.dir)
		cmd.Args[0] = tc.argv0 // what a shell passes as os.Args[0]
		cmd.Dir = cwd
		out, err := cmd.Output()
		require.NoError(t, err)
		require.FileExists(t, filepath.Join(cwd, tc.dir, "app.json"))
		for _, hint := range []string{
			tc.bin + " check --app " + tc.app + " && ",
			tc.bin + " call --app " + tc.app + " services.GreetingSvc.hello '{\"name\": \"Ada\"}'",
			tc.bin + " serve --app " + tc.app,
		} {
			require.Contains(t, string(out), hint, "argv[0] %q", tc.argv0)
		}
	}
}

// The sample's service sends the event its listener listens to: `trellis call` of hello leaves
// the event waiting (call serves no events), and the next `trellis serve` runs the listener.
func TestSampleGreetingRunsItsListener(t *testing.T) {
	t.Parallel()
	dir := initApp(t)
	r := trellis(t, "call", "--app", dir, "services.GreetingSvc.hello", `{"name": "Ada"}`)
	require.Equal(t, 0, r.code, r.stderr)
	var res struct{ Message, RequestID string }
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &res), r.stdout)
	require.Equal(t, "Hello, Ada!", res.Message)
	require.NotEmpty(t, res.RequestID, "hello returns the request of the event it sent: %s", r.stdout)

	r = trellis(t, "logs", "--app", dir, "--request", res.RequestID)
	require.Equal(t, 0, r.code, r.stderr)
	listener := listenerRow([]byte(r.stdout))
	require.NotNil(t, listener, "the event is in the request: %s", r.stdout)
	require.Equal(t, "waiting", listener.Status, "no host serves events yet")

	base, token := serveSample(t, dir)
	var last latest
	require.Eventually(t, func() bool {
		req, _ := http.NewRequest("GET", base+"/api/events/requests/"+res.RequestID, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		last.Store(string(b))
		l := listenerRow(b)
		return resp.StatusCode == 200 && l != nil && l.Status == "success"
	}, 30*time.Second, 50*time.Millisecond, "the listener never ran; last answer: %s", &last)
	listener = listenerRow([]byte(last.String()))
	require.JSONEq(t, `{"name": "Ada", "message": "Hello, Ada!"}`, string(listener.Kwargs))
	require.Len(t, listener.Logs, 1)
	require.True(t, strings.HasPrefix(listener.Logs[0].Message, "greeting event {"), "the listener's own log: %s", listener.Logs[0].Message)
}

// logRow is what these tests read of a log row.
type logRow struct {
	FullName string          `json:"fullName"`
	Status   string          `json:"status"`
	Kwargs   json.RawMessage `json:"kwargs"` // a service call's are its argument list
	Logs     []struct{ Message string }
}

// listenerRow finds the sample listener's row among the rows of a request (which also holds
// the service call that sent the event); nil when there is none or body is not rows.
func listenerRow(body []byte) *logRow {
	var rows []logRow
	if json.Unmarshal(body, &rows) != nil {
		return nil
	}
	for i := range rows {
		if rows[i].FullName == "events.GreetingSent" {
			return &rows[i]
		}
	}
	return nil
}

// latest is the last answer a polled condition saw, printed when the wait fails: a Stringer, so
// the message reads it then, and atomic, since the condition may still be running.
type latest struct{ atomic.Value }

func (l *latest) String() string { s, _ := l.Load().(string); return s }

// serveSample starts `trellis serve` on a free port and returns its address and the admin
// token it prints on first start.
func serveSample(t *testing.T, dir string) (base, token string) {
	t.Helper()
	cmd := exec.Command(trellisBin, "serve", "--app", dir, "--addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "TRELLIS_WORKERS=1", "TRELLIS_ADMIN_TOKEN=")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr // serve's own problems show in the test log
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	for (base == "" || token == "") && lines.Scan() {
		l := lines.Text()
		if i := strings.Index(l, "http://"); i >= 0 && base == "" {
			base = strings.Fields(l[i:])[0]
		}
		if strings.Contains(l, "admin token") {
			token = l[strings.LastIndex(l, " ")+1:]
		}
	}
	require.NotEmpty(t, base, "serve printed no address")
	require.NotEmpty(t, token, "serve printed no admin token")
	go func() { _, _ = io.Copy(io.Discard, stdout) }() // keep serve from blocking on a full pipe
	return base, token
}

// The sample app has signals on, and its receiver signals.AuditTrail runs for the greeting
// listener's node_finish: a row of the request with what it printed; the stream has the signal.
func TestSampleSignalReceiverRuns(t *testing.T) {
	t.Parallel()
	dir := initApp(t)
	base, token := serveSample(t, dir)
	get := func(method, path, body string) (int, []byte) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	code, b := get("POST", "/api/services/services.GreetingSvc/hello", `{"name": "Ada"}`)
	require.Equal(t, 200, code, string(b))
	var out struct{ Result struct{ RequestID string } }
	require.NoError(t, json.Unmarshal(b, &out), string(b))
	require.NotEmpty(t, out.Result.RequestID, string(b))

	var last latest
	require.Eventually(t, func() bool {
		code, b := get("GET", "/api/events/requests/"+out.Result.RequestID, "")
		last.Store(string(b))
		var rows []logRow
		if code != 200 || json.Unmarshal(b, &rows) != nil {
			return false
		}
		for _, r := range rows {
			if r.FullName == "signals.AuditTrail" && r.Status == "success" && len(r.Logs) == 1 {
				return strings.HasPrefix(r.Logs[0].Message, "signal node_finish node ")
			}
		}
		return false
	}, 30*time.Second, 50*time.Millisecond, "the receiver never ran; last answer: %s", &last)

	code, b = get("GET", "/api/signals/stream?follow=false&eventTypes=node_finish&lastEventId=0", "")
	require.Equal(t, 200, code, string(b))
	require.Contains(t, string(b), "event: node_finish\n")
	require.Contains(t, string(b), `"requestId":"`+out.Result.RequestID+`"`)
}
