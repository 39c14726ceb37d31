package web

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/backends"
	"github.com/trellis-run/trellis/host/lifecycle"
	"github.com/trellis-run/trellis/host/signals"
)

// sse is one event of a stream, or a comment (event "" and data the comment).
type sse struct {
	id, event, data string
	comment         bool
}

// sseClient reads a signal stream.
type sseClient struct {
	t    testing.TB
	resp *http.Response
	r    *bufio.Reader
	ch   chan sse
}

// openStream starts GET path on the server with the bearer token and extra headers.
func openStream(t testing.TB, base, path string, header map[string]string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", base+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+testToken)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Body.Close() })
	c := &sseClient{t: t, resp: resp, r: bufio.NewReader(resp.Body), ch: make(chan sse, 1024)}
	if resp.StatusCode == 200 {
		go c.read()
	}
	return c
}

func (c *sseClient) read() {
	defer close(c.ch)
	var cur sse
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if cur != (sse{}) {
				c.ch <- cur
			}
			cur = sse{}
		case strings.HasPrefix(line, ":"):
			c.ch <- sse{comment: true, data: strings.TrimSpace(line[1:])}
		default:
			k, v, _ := strings.Cut(line, ": ")
			switch k {
			case "id":
				cur.id = v
			case "event":
				cur.event = v
			case "data":
				cur.data = v
			}
		}
	}
}

// next is the next event (comments skipped); ok false when the stream ended.
func (c *sseClient) next() (sse, bool) {
	c.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e, ok := <-c.ch:
			if !ok {
				return sse{}, false
			}
			if e.comment {
				continue
			}
			return e, true
		case <-timeout:
			c.t.Fatal("no event within 10 s")
		}
	}
}

// ended waits for the stream to end.
func (c *sseClient) ended() {
	c.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-c.ch:
			if !ok {
				return
			}
		case <-timeout:
			c.t.Fatal("the stream did not end within 5 s")
		}
	}
}

type signalFixture struct {
	host *host.Host
	srv  *Server
	base string
}

func newSignalFixture(t *testing.T, enabled bool) *signalFixture {
	t.Helper()
	dir := writeApp(t, map[string]string{
		"app.json": fmt.Sprintf(`{"name": "sse", "signals": {"enabled": %v}}`, enabled),
	})
	h, err := host.New(host.Config{AppDir: dir, Sandbox: host.SandboxInProcess, Workers: 1, ServeEvents: true}, backends.Open)
	require.NoError(t, err)
	require.NoError(t, h.Start(context.Background()))
	t.Cleanup(func() { _ = h.Stop(context.Background()) })
	d := depsOf(h)
	d.Signals = h
	srv, err := New(d, Options{Token: testToken, SignalHeartbeat: 50 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, srv.Start("127.0.0.1:0"))
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	return &signalFixture{host: h, srv: srv, base: "http://" + srv.Addr()}
}

func (f *signalFixture) emit(t lifecycle.Type, node string) {
	f.host.Signals().Emit(context.Background(), lifecycle.Signal{Type: t, RequestID: "req_1", NodeID: node, Element: "events.X",
		Data: map[string]any{"root_pipeline_id": "req_1", "node_id": node}})
}

func TestSignalStreamSendsEachSignalAsAnEvent(t *testing.T) {
	t.Parallel()
	f := newSignalFixture(t, true)
	c := openStream(t, f.base, "/api/signals/stream", nil)
	require.Equal(t, 200, c.resp.StatusCode)
	require.Equal(t, "text/event-stream; charset=utf-8", c.resp.Header.Get("Content-Type"))

	f.emit(lifecycle.NodeEnter, "n1")
	f.emit(lifecycle.NodeFinish, "n1")
	f.emit(lifecycle.PipelineFinish, "")
	var ids []string
	for _, want := range []string{"node_enter", "node_finish", "pipeline_finish"} {
		e, ok := c.next()
		require.True(t, ok)
		require.Equal(t, want, e.event)
		require.NotEmpty(t, e.id)
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(e.data), &rec), e.data)
		require.Equal(t, e.id, rec["id"])
		require.Equal(t, want, rec["event_type"])
		require.Equal(t, "req_1", rec["data"].(map[string]any)["root_pipeline_id"])
		require.Equal(t, "req_1", rec["requestId"])
		require.NotEmpty(t, rec["at"])
		require.Contains(t, rec["host"], "/inst_")
		ids = append(ids, e.id)
	}
	// Idle: keep-alive comments.
	select {
	case e := <-c.ch:
		require.True(t, e.comment, "only comments while idle: %+v", e)
		require.Equal(t, "keep-alive", e.data)
	case <-time.After(5 * time.Second):
		t.Fatal("no keep-alive")
	}

	// Resuming after the first: the two that followed; a filter keeps its types only.
	r := openStream(t, f.base, "/api/signals/stream?follow=false", map[string]string{"Last-Event-ID": ids[0]})
	var got []string
	for e, ok := r.next(); ok; e, ok = r.next() {
		got = append(got, e.id+" "+e.event)
	}
	require.Equal(t, []string{ids[1] + " node_finish", ids[2] + " pipeline_finish"}, got)
	r = openStream(t, f.base, "/api/signals/stream?follow=false&eventTypes=node_enter,pipeline_finish", map[string]string{"Last-Event-ID": "0"})
	got = nil
	for e, ok := r.next(); ok; e, ok = r.next() {
		got = append(got, e.event)
	}
	require.Equal(t, []string{"gap", "node_enter", "pipeline_finish"}, got, "0 is older than the oldest signal held: the stream cannot vouch for what came between")

	// A filtered live stream skips other types.
	live := openStream(t, f.base, "/api/signals/stream?eventTypes=node_finish", nil)
	f.emit(lifecycle.NodeEnter, "n2")
	f.emit(lifecycle.NodeFinish, "n2")
	e, ok := live.next()
	require.True(t, ok)
	require.Equal(t, "node_finish", e.event)
	require.Contains(t, e.data, `"nodeId":"n2"`)
}

func TestSignalStreamRefusesWithoutTheToken(t *testing.T) {
	t.Parallel()
	f := newSignalFixture(t, true)
	for _, auth := range []string{"", "Bearer nope"} {
		req, err := http.NewRequest("GET", f.base+"/api/signals/stream", nil)
		require.NoError(t, err)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		require.Equal(t, 401, resp.StatusCode)
		require.Contains(t, string(body), `"code":"unauthorized"`)
	}
}

func TestSignalStreamSaysWhenSignalsAreOff(t *testing.T) {
	t.Parallel()
	f := newSignalFixture(t, false)
	c := openStream(t, f.base, "/api/signals/stream?follow=false", nil)
	e, ok := <-c.ch
	require.True(t, ok)
	require.True(t, e.comment)
	require.Contains(t, e.data, `signals are off`)
	f.emit(lifecycle.NodeEnter, "n1")
	c.ended()
}

func TestSignalStreamEndsWhenTheClientGoesOrTheServerStops(t *testing.T) {
	t.Parallel()
	f := newSignalFixture(t, true)
	// The client goes: its handler returns, so Stop has nothing to wait for.
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", f.base+"/api/signals/stream", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode)
	cancel()
	_ = resp.Body.Close()

	// One still reading when the server stops: Stop ends it at once.
	c := openStream(t, f.base, "/api/signals/stream", nil)
	f.emit(lifecycle.NodeEnter, "n1")
	_, ok := c.next()
	require.True(t, ok)
	sctx, scancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer scancel()
	start := time.Now()
	require.NoError(t, f.srv.Stop(sctx), "no stream keeps the server from stopping")
	require.Less(t, time.Since(start), 2*time.Second)
	c.ended()
}

func TestSignalStreamEndsWhenTheHostStops(t *testing.T) {
	t.Parallel()
	f := newSignalFixture(t, true)
	c := openStream(t, f.base, "/api/signals/stream", nil)
	require.Equal(t, 200, c.resp.StatusCode)
	require.NoError(t, f.host.Stop(context.Background()))
	c.ended()
}

// fixedHub serves a hub of its own, to show what a client that fell behind gets.
type fixedHub struct{ hub *signals.Hub }

func (f fixedHub) SignalsFrom(lastID string) (*signals.Reader, bool, error) {
	return f.hub.Reader(lastID)
}

func TestSignalStreamSaysWhenSignalsWereMissed(t *testing.T) {
	t.Parallel()
	f := newSignalFixture(t, true)
	hub := signals.NewHub(2)
	for _, id := range []string{"5-0", "6-0", "7-0"} {
		hub.Add(signals.Record{ID: id, Signal: lifecycle.Signal{Type: lifecycle.NodeEnter}})
	}
	d := depsOf(f.host)
	d.Signals = fixedHub{hub}
	srv, err := New(d, Options{Token: testToken})
	require.NoError(t, err)
	require.NoError(t, srv.Start("127.0.0.1:0"))
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	c := openStream(t, "http://"+srv.Addr(), "/api/signals/stream?follow=false", map[string]string{"Last-Event-ID": "4-0"})
	var got []string
	for e, ok := c.next(); ok; e, ok = c.next() {
		got = append(got, e.event+" "+e.id)
	}
	require.Equal(t, []string{"gap ", "node_enter 6-0", "node_enter 7-0"}, got, "5-0 fell out of the hub: the stream says so first")
}

// BenchmarkSignalToStream measures signal delivery to the SSE stream: Emit on a host, through
// its bus (embedded, or Redis with TRELLIS_TEST_REDIS and -bench .../redis), to a client reading
// GET /api/signals/stream over HTTP; p50 and p99 of emit → event received.
func BenchmarkSignalToStream(b *testing.B) {
	for _, backend := range []string{"embedded", "redis"} {
		b.Run(backend, func(b *testing.B) {
			cfg := host.Config{Sandbox: host.SandboxInProcess, Workers: 1, ServeEvents: true}
			name := "ssebench"
			if backend == "redis" {
				cfg.RedisURL = os.Getenv("TRELLIS_TEST_REDIS")
				if cfg.RedisURL == "" {
					b.Skip("TRELLIS_TEST_REDIS is not set")
				}
				name = fmt.Sprintf("ssebench%d", time.Now().UnixNano())
			}
			cfg.AppDir = b.TempDir()
			require.NoError(b, os.WriteFile(filepath.Join(cfg.AppDir, "app.json"), []byte(fmt.Sprintf(`{"name": %q, "signals": {"enabled": true}}`, name)), 0o644))
			h, err := host.New(cfg, backends.Open)
			require.NoError(b, err)
			require.NoError(b, h.Start(context.Background()))
			b.Cleanup(func() { _ = h.Stop(context.Background()) })
			srv, err := New(depsOf(h), Options{Token: testToken})
			require.NoError(b, err)
			require.NoError(b, srv.Start("127.0.0.1:0"))
			b.Cleanup(func() { _ = srv.Stop(context.Background()) })
			c := openStream(b, "http://"+srv.Addr(), "/api/signals/stream", nil)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				node := fmt.Sprint("n", i)
				start := time.Now()
				h.Signals().Emit(context.Background(), lifecycle.Signal{Type: lifecycle.NodeFinish, RequestID: "req_b", NodeID: node,
					Data: map[string]any{"root_pipeline_id": "req_b", "node_id": node}})
				e, ok := c.next()
				if !ok || !strings.Contains(e.data, `"nodeId":"`+node+`"`) {
					b.Fatalf("event %d: %+v", i, e)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
			b.ReportMetric(q(0.5), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			b.ReportMetric(q(1), "max-ms")
		})
	}
}
