package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/require"
)

// serveProc is one `trellis serve` process of a cluster test.
type serveProc struct {
	cmd  *exec.Cmd
	base string
}

func startServe(t *testing.T, env []string, args ...string) *serveProc {
	t.Helper()
	cmd := exec.Command(trellisBin, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		if i := strings.Index(lines.Text(), "http://"); i >= 0 {
			p := &serveProc{cmd: cmd, base: strings.Fields(lines.Text()[i:])[0]}
			go func() { _, _ = io.Copy(io.Discard, out) }()
			return p
		}
	}
	t.Fatal("serve did not print its address")
	return nil
}

func (p *serveProc) call(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, p.base+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer cluster-token")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

type logPage struct {
	TotalCount int64            `json:"totalCount"`
	RowDatas   []map[string]any `json:"rowDatas"`
}

// TestClusterKill9LosesNoEvent runs three hosts on one Redis and one ClickHouse, kills one with
// -9 while it runs handlers, and checks every event still completes: the dead host's deliveries
// are claimed after the claim timeout, duplicates are bounded by what it had in flight, and a
// handler slower than the claim timeout on a live host is never run twice.
func TestClusterKill9LosesNoEvent(t *testing.T) {
	redis, ch := os.Getenv("TRELLIS_TEST_REDIS"), os.Getenv("TRELLIS_TEST_CLICKHOUSE")
	if redis == "" || ch == "" {
		t.Skip(`TRELLIS_TEST_REDIS and TRELLIS_TEST_CLICKHOUSE are not set: run eval "$(scripts/services.sh start)" first`)
	}
	t.Parallel()
	id := fmt.Sprintf("k%d", time.Now().UnixNano())
	app := filepath.Join(t.TempDir(), "app")
	for name, text := range map[string]string{
		"app.json": fmt.Sprintf(`{"name": %q}`, id),
		// 300 ms of work per event: long enough that a kill lands mid-handler.
		"events/Slow/e.json":   `{"title": "Slow", "type": "events.NormalType", "sender": "load", "retry": {"policy": "none"}}`,
		"events/Slow/index.js": `exports.handle = function (event) { const end = Date.now() + 300; while (Date.now() < end) {} return event.kwargs.n; };`,
		// Slower than the claim timeout, on live hosts: must not run twice.
		"events/Long/e.json":   `{"title": "Long", "type": "events.NormalType", "sender": "long", "retry": {"policy": "none"}, "timeout": "10s"}`,
		"events/Long/index.js": `exports.handle = function () { const end = Date.now() + 2500; while (Date.now() < end) {} return 1; };`,
	} {
		write(t, filepath.Join(app, name), text)
	}
	// A database of its own, so the three hosts share a log no other test sees.
	opts, err := clickhouse.ParseDSN(ch)
	require.NoError(t, err)
	conn, err := clickhouse.Open(opts)
	require.NoError(t, err)
	require.NoError(t, conn.Exec(context.Background(), "CREATE DATABASE IF NOT EXISTS trellis_"+id))
	t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS trellis_"+id); _ = conn.Close() })
	dsn := ch[:strings.LastIndex(ch, "/")] + "/trellis_" + id
	env := []string{"TRELLIS_ADMIN_TOKEN=cluster-token", "TRELLIS_WORKERS=1", "TRELLIS_SANDBOX=inprocess"}
	var hosts []*serveProc
	var dataDirs []string
	for i := 0; i < 3; i++ {
		dataDirs = append(dataDirs, filepath.Join(t.TempDir(), fmt.Sprint("data", i)))
		hosts = append(hosts, startServe(t, env, "--app", app, "--data", dataDirs[i],
			"--redis", redis, "--clickhouse", dsn, "--claim-timeout", "2s"))
	}
	const events = 45
	for i := 0; i < events; i++ {
		code, body := hosts[i%3].call(t, "POST", "/api/events/send", fmt.Sprintf(`{"sender": "load", "kwargs": {"n": %d}}`, i))
		require.Equal(t, 200, code, string(body))
	}
	for i := 0; i < 2; i++ {
		code, body := hosts[0].call(t, "POST", "/api/events/send", `{"sender": "long", "kwargs": {}}`)
		require.Equal(t, 200, code, string(body))
	}

	// Kill host 2 while handlers run: with 45 events of 300 ms over three hosts, every host is
	// busy for seconds once the first rows show as running.
	victim := hosts[2]
	require.Eventually(t, func() bool {
		_, body := hosts[0].call(t, "GET", "/api/events/logs?fullName=events.Slow&status=running&pageSize=1", "")
		var page logPage
		require.NoError(t, json.Unmarshal(body, &page))
		return page.TotalCount > 0
	}, 20*time.Second, 50*time.Millisecond)
	require.NoError(t, victim.cmd.Process.Signal(syscall.SIGKILL))
	_, _ = victim.cmd.Process.Wait()

	// The survivors take the dead host's deliveries over after the claim timeout. The log rows
	// it had acknowledged but not yet inserted wait in its spool on disk; they reach the log when
	// it starts again on the same data directory, as a restarted host does.
	time.Sleep(5 * time.Second)
	startServe(t, env, "--app", app, "--data", dataDirs[2], "--redis", redis, "--clickhouse", dsn, "--claim-timeout", "2s")

	// Every event completes on the survivors.
	require.Eventually(t, func() bool {
		_, body := hosts[0].call(t, "GET", "/api/events/logs?fullName=events.Slow&status=success&pageSize=1000", "")
		var page logPage
		require.NoError(t, json.Unmarshal(body, &page))
		return page.TotalCount == events
	}, 60*time.Second, 200*time.Millisecond, "every event handled after the kill")

	// Duplicates are bounded by what the dead host had in flight (its prefetch), and the long
	// handlers on live hosts ran once each.
	_, body := hosts[0].call(t, "GET", "/api/events/logs?fullName=events.Slow&pageSize=1000", "")
	var page logPage
	require.NoError(t, json.Unmarshal(body, &page))
	reruns := 0
	for _, r := range page.RowDatas {
		_, attempts := hosts[0].call(t, "GET", "/api/events/nodes/"+r["nodeId"].(string)+"/attempts", "")
		reruns += bytes.Count(attempts, []byte(`"stage":"running"`)) - 1
	}
	require.LessOrEqual(t, reruns, 128, "re-runs bounded by the killed host's in-flight deliveries")
	require.Eventually(t, func() bool {
		_, body := hosts[0].call(t, "GET", "/api/events/logs?fullName=events.Long&status=success", "")
		var page logPage
		require.NoError(t, json.Unmarshal(body, &page))
		return page.TotalCount == 2
	}, 30*time.Second, 200*time.Millisecond)
	_, body = hosts[0].call(t, "GET", "/api/events/logs?fullName=events.Long", "")
	require.NoError(t, json.Unmarshal(body, &page))
	for _, r := range page.RowDatas {
		_, attempts := hosts[0].call(t, "GET", "/api/events/nodes/"+r["nodeId"].(string)+"/attempts", "")
		require.Equal(t, 1, bytes.Count(attempts, []byte(`"stage":"running"`)), "a live handler slower than the claim timeout runs once: %s", attempts)
	}
}
