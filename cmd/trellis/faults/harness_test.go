package faults

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/bus/redisbus/redistest"
)

// trellisBin is the CLI, built once (or named by TRELLIS_FAULT_BIN): the scenarios run it
// exactly as an operator does.
var trellisBin string

func TestMain(m *testing.M) {
	if os.Getenv("TRELLIS_FAULT") != "1" {
		os.Exit(m.Run()) // every test skips and says how to run it
	}
	go watchStalls()
	if trellisBin = os.Getenv("TRELLIS_FAULT_BIN"); trellisBin != "" {
		os.Exit(m.Run()) // a binary built beforehand, e.g. from another checkout
	}
	dir, err := os.MkdirTemp("", "trellis-fault-bin-")
	if err != nil {
		panic(err)
	}
	trellisBin = filepath.Join(dir, "trellis")
	build := exec.Command("go", "build", "-o", trellisBin, "..")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "faults: build trellis:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// stall is a time the whole test process stood still: the machine, not Trellis (another
// process's memory thrashing the page cache stopped everything for minutes while this suite was
// written). A scenario that fails says so, so a stall is not mistaken for a bug.
type stall struct {
	at   time.Time
	took time.Duration
}

var (
	stallsMu sync.Mutex
	stalls   []stall
)

// watchStalls records every 100 ms sleep that took more than 2 s.
func watchStalls() {
	for {
		began := time.Now()
		time.Sleep(100 * time.Millisecond)
		if d := time.Since(began); d > 2*time.Second {
			stallsMu.Lock()
			stalls = append(stalls, stall{began, d})
			stallsMu.Unlock()
		}
	}
}

// stallsSince describes the stalls recorded since t.
func stallsSince(t time.Time) string {
	stallsMu.Lock()
	defer stallsMu.Unlock()
	var out []string
	for _, s := range stalls {
		if s.at.After(t) {
			out = append(out, fmt.Sprintf("%s for %s", s.at.Format("15:04:05"), s.took.Round(100*time.Millisecond)))
		}
	}
	return strings.Join(out, ", ")
}

// services are the shared servers the scenarios run on (scripts/services.sh start sets them).
type services struct{ redis, clickhouse, postgres string }

// need skips the test unless the fault suite was asked for, and fails it when the suite was
// asked for without the servers: a fault suite that skips is not one that passed.
func need(t *testing.T) services {
	t.Helper()
	if os.Getenv("TRELLIS_FAULT") != "1" {
		t.Skip("the fault suite runs with TRELLIS_FAULT=1 (make fault): it takes minutes and stops servers")
	}
	s := services{os.Getenv("TRELLIS_TEST_REDIS"), os.Getenv("TRELLIS_TEST_CLICKHOUSE"), os.Getenv("TRELLIS_TEST_POSTGRES")}
	if s.redis == "" || s.clickhouse == "" || s.postgres == "" {
		t.Fatal(`TRELLIS_TEST_REDIS, TRELLIS_TEST_CLICKHOUSE and TRELLIS_TEST_POSTGRES must be set: make fault starts the servers (or eval "$(bash scripts/services.sh start)")`)
	}
	return s
}

// figure logs one measured figure of the suite in a form BENCHMARKS.md is written from.
func figure(t *testing.T, name string, value any) {
	t.Helper()
	t.Logf("FIGURE %s %s = %v", t.Name(), name, value)
}

const token = "fault-suite-token"

// clusterConfig says what a cluster's hosts share and run.
type clusterConfig struct {
	redis, clickhouse, postgres string // base URLs; the cluster makes its own database and schema
	files                       map[string]string
	appJSON                     map[string]any // app.json fields besides its name
	args                        []string       // serve flags every host gets
}

// cluster is one app served by several `trellis serve` processes on shared backends. Its app
// name is unique per run, and with it the Redis keys (trellis:<id>:…), the ClickHouse database
// and the PostgreSQL schema: other suites on the same servers never meet it.
type cluster struct {
	t      *testing.T
	id     string
	app    string
	dir    string // data directories and each process's log
	redis  string
	ch     string // DSN of the cluster's own database
	pg     string // DSN whose search_path is the cluster's own schema
	schema string
	args   []string

	mu    sync.Mutex
	hosts []*proc
	gen   int

	fires *pgx.Conn // fired's connection, made at its first call
}

func newCluster(t *testing.T, cfg clusterConfig) *cluster {
	t.Helper()
	id := fmt.Sprintf("f%d", time.Now().UnixNano())
	dir, err := os.MkdirTemp("", "trellis-fault-"+id+"-")
	require.NoError(t, err)
	c := &cluster{t: t, id: id, app: filepath.Join(dir, "app"), dir: dir, redis: cfg.redis, args: cfg.args}
	// The process logs stay when the test fails: they are what explains a failure.
	began := time.Now()
	t.Cleanup(func() {
		if st := stallsSince(began); st != "" {
			t.Logf("the machine stalled (every process of the test stood still; not a fault the suite injected): %s", st)
		}
		if t.Failed() {
			t.Logf("hosts' logs kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	appJSON := map[string]any{"name": id}
	for k, v := range cfg.appJSON {
		appJSON[k] = v
	}
	aj, err := json.Marshal(appJSON)
	require.NoError(t, err)
	files := map[string]string{"app.json": string(aj)}
	for k, v := range cfg.files {
		files[k] = v
	}
	for name, text := range files {
		p := filepath.Join(c.app, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	}

	// ClickHouse: a database of the run's own.
	opts, err := clickhouse.ParseDSN(cfg.clickhouse)
	require.NoError(t, err)
	conn, err := clickhouse.Open(opts)
	require.NoError(t, err)
	db := "trellis_" + id
	require.NoError(t, conn.Exec(context.Background(), "CREATE DATABASE IF NOT EXISTS "+db))
	_ = conn.Close()
	c.ch = cfg.clickhouse[:strings.LastIndex(cfg.clickhouse, "/")] + "/" + db
	t.Cleanup(func() {
		// Best effort: a scenario may have stopped a private server for good already.
		if conn, err := clickhouse.Open(opts); err == nil {
			_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
			_ = conn.Close()
		}
	})

	// PostgreSQL: a schema of the run's own, named by search_path in the DSN the hosts get.
	c.schema = "fault_" + id
	pc, err := pgx.Connect(context.Background(), cfg.postgres)
	require.NoError(t, err)
	_, err = pc.Exec(context.Background(), "CREATE SCHEMA "+c.schema)
	require.NoError(t, err)
	_ = pc.Close(context.Background())
	sep := "?"
	if strings.Contains(cfg.postgres, "?") {
		sep = "&"
	}
	c.pg = cfg.postgres + sep + "search_path=" + c.schema
	t.Cleanup(func() {
		if pc, err := pgx.Connect(context.Background(), cfg.postgres); err == nil {
			_, _ = pc.Exec(context.Background(), "DROP SCHEMA "+c.schema+" CASCADE")
			_ = pc.Close(context.Background())
		}
	})
	t.Cleanup(func() { redistest.DeleteKeys(t, c.redis, "trellis:"+id+":*") })
	// Cleanups run last first: the hosts die before their keys, database and schema go.
	t.Cleanup(c.killAll)
	return c
}

// proc is one `trellis serve` process, the leader of a process group of its own, as a
// container's init is: killing the group is what `docker kill` or the OOM killer of a cgroup does.
type proc struct {
	index  int
	cmd    *exec.Cmd
	base   string
	data   string
	log    string
	exited chan struct{}

	// gate keeps sends off a host about to be killed: a send holds it shared while in flight,
	// the killer holds it exclusively, so no acknowledged send is in doubt.
	gate sync.RWMutex
}

// start starts host i of the cluster on a fresh data directory (a new container) with extra
// environment, and waits until it serves. It replaces whatever process held slot i.
func (c *cluster) start(i int, env ...string) *proc {
	c.t.Helper()
	c.mu.Lock()
	c.gen++
	gen := c.gen
	for len(c.hosts) <= i {
		c.hosts = append(c.hosts, nil)
	}
	c.mu.Unlock()
	p := &proc{index: i, data: filepath.Join(c.dir, fmt.Sprintf("h%d-%d", i, gen)), log: filepath.Join(c.dir, fmt.Sprintf("h%d-%d.log", i, gen)), exited: make(chan struct{})}
	args := append([]string{"serve", "--app", c.app, "--data", p.data, "--addr", "127.0.0.1:0",
		"--redis", c.redis, "--clickhouse", c.ch, "--db", c.pg}, c.args...)
	p.cmd = exec.Command(trellisBin, args...)
	p.cmd.Env = append(append(os.Environ(), "TRELLIS_ADMIN_TOKEN="+token), env...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logf, err := os.Create(p.log)
	require.NoError(c.t, err)
	p.cmd.Stderr = logf
	out, err := p.cmd.StdoutPipe()
	require.NoError(c.t, err)
	require.NoError(c.t, p.cmd.Start())
	go func() { _ = p.cmd.Wait(); _ = logf.Close(); close(p.exited) }()
	addr := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(out)
		for lines.Scan() {
			if i := strings.Index(lines.Text(), "http://"); i >= 0 {
				addr <- strings.Fields(lines.Text()[i:])[0]
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case p.base = <-addr:
	case <-p.exited:
		c.t.Fatalf("host %d exited before serving:\n%s", i, tail(p.log))
	case <-time.After(90 * time.Second):
		c.kill(p)
		c.t.Fatalf("host %d did not print its address within 90 s:\n%s", i, tail(p.log))
	}
	c.mu.Lock()
	c.hosts[i] = p
	c.mu.Unlock()
	return p
}

// kill sends SIGKILL to the whole process group of p and waits until the process is gone.
func (c *cluster) kill(p *proc) {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// killHost takes host i out of the cluster with kill -9: sends to it finish first and no new
// one starts (a load balancer's view of a dead backend), then its process group dies.
func (c *cluster) killHost(i int) *proc {
	c.mu.Lock()
	p := c.hosts[i]
	c.hosts[i] = nil
	c.mu.Unlock()
	if p == nil {
		return nil
	}
	p.gate.Lock()
	c.kill(p)
	return p
}

func (c *cluster) killAll() {
	c.mu.Lock()
	hosts := append([]*proc(nil), c.hosts...)
	c.mu.Unlock()
	for i, p := range hosts {
		if p != nil {
			c.killHost(i)
		}
	}
}

// live returns the hosts now serving.
func (c *cluster) live() []*proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*proc
	for _, p := range c.hosts {
		if p != nil {
			out = append(out, p)
		}
	}
	return out
}

// any returns a live host, failing the test when there is none.
func (c *cluster) any() *proc {
	c.t.Helper()
	l := c.live()
	require.NotEmpty(c.t, l, "no host is running")
	return l[0]
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

var httpClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}}

// do calls the host's HTTP API with the admin token; body is a string or marshalled as JSON.
func (p *proc) do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.base+path, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// get is do for a GET the test needs answered 200, decoded into v.
func (c *cluster) get(p *proc, path string, v any) {
	c.t.Helper()
	code, body, err := p.do(context.Background(), "GET", path, nil)
	require.NoError(c.t, err, "GET %s", path)
	require.Equal(c.t, 200, code, "GET %s: %s", path, body)
	require.NoError(c.t, json.Unmarshal(body, v), "GET %s", path)
}

// logRow is a row of GET /api/events/logs (the fields the suite reads).
type logRow struct {
	NodeID    string         `json:"nodeId"`
	FullName  string         `json:"fullName"`
	Status    string         `json:"status"`
	Stage     string         `json:"stage"`
	Attempt   int            `json:"attempt"`
	Host      string         `json:"host"`
	StartTime string         `json:"startTime"`
	Kwargs    map[string]any `json:"kwargs"`
}

type logPage struct {
	TotalCount int64    `json:"totalCount"`
	RowDatas   []logRow `json:"rowDatas"`
}

// count is the number of nodes GET /api/events/logs finds for query (by their latest state).
func (c *cluster) count(query string) int64 {
	c.t.Helper()
	var page logPage
	c.get(c.any(), "/api/events/logs?pageSize=1&"+query, &page)
	return page.TotalCount
}

// nodes reads every node the query finds, by its latest state, page by page: call it once the
// log no longer changes, or pages shift under it.
func (c *cluster) nodes(query string) map[string]logRow {
	c.t.Helper()
	out := map[string]logRow{}
	p := c.any()
	for page := 1; ; page++ {
		var pg logPage
		c.get(p, fmt.Sprintf("/api/events/logs?pageSize=1000&page=%d&%s", page, query), &pg)
		for _, r := range pg.RowDatas {
			out[r.NodeID] = r
		}
		if len(pg.RowDatas) < 1000 {
			require.EqualValues(c.t, pg.TotalCount, len(out), "the log changed while it was read page by page (%s)", query)
			return out
		}
	}
}

// waitFor polls cond every interval until it holds or d has passed; it returns how long that took.
func waitFor(t *testing.T, d, every time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if cond() {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(every)
	}
}

// pgConn connects to the cluster's schema in PostgreSQL, where the handlers' model rows are.
func (c *cluster) pgConn() *pgx.Conn {
	c.t.Helper()
	conn, err := pgx.Connect(context.Background(), c.pg)
	require.NoError(c.t, err)
	c.t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// modelTable is the table of model fullName in the cluster's schema (the model catalog says).
func (c *cluster) modelTable(conn *pgx.Conn, model string) string {
	c.t.Helper()
	var tbl string
	require.NoError(c.t, conn.QueryRow(context.Background(), `SELECT tbl FROM trellis_models WHERE model = $1`, model).Scan(&tbl))
	return pgx.Identifier{tbl}.Sanitize()
}

// redisClient is a client of the cluster's Redis.
func (c *cluster) redisClient() *redis.Client {
	c.t.Helper()
	o, err := redis.ParseURL(c.redis)
	require.NoError(c.t, err)
	cl := redis.NewClient(o)
	c.t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// key is the Redis key of one of the app's streams on one server (docs/cluster.md).
func (c *cluster) key(name string) string { return "trellis:" + c.id + ":" + name }

// sent is one event a host acknowledged (POST /api/events/send answered 200).
type sent struct {
	n          int
	eventID    string
	nodes      map[string]string // listener → its node
	host       int
	answeredAt time.Time
}

// loader offers events at a steady rate to the cluster's live hosts, round robin, and keeps
// every acknowledgement. A tick whose send cannot start (every host busy or gated) is late, not
// lost: the loader catches up at the next ticks.
type loader struct {
	c      *cluster
	sender string
	rate   int
	total  int // 0: until stop

	mu       sync.Mutex
	acked    []sent
	failures map[string]int // error text → count
	failed   int

	stop chan struct{}
	done chan struct{}
}

func (c *cluster) load(sender string, rate, total int) *loader {
	l := &loader{c: c, sender: sender, rate: rate, total: total, failures: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l
}

func (l *loader) run() {
	defer close(l.done)
	const maxInFlight = 64
	slots := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	start := time.Now()
	tick := time.NewTicker(time.Second / time.Duration(l.rate))
	defer tick.Stop()
	next := 0
	for n := 0; l.total == 0 || n < l.total; {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		// As many sends as the schedule says are due by now; when every slot is taken the cluster
		// is not keeping up, and the rest are late: made up at the next ticks.
		due := int(time.Since(start).Seconds() * float64(l.rate))
	sends:
		for n < due && (l.total == 0 || n < l.total) {
			hosts := l.c.live()
			if len(hosts) == 0 {
				break
			}
			p := hosts[next%len(hosts)]
			next++
			if !p.gate.TryRLock() {
				continue // being killed: the next host takes the send
			}
			select {
			case slots <- struct{}{}:
			default:
				p.gate.RUnlock()
				break sends
			}
			wg.Add(1)
			go func(n int, p *proc) {
				defer wg.Done()
				defer func() { <-slots }()
				defer p.gate.RUnlock()
				l.send(n, p)
			}(n, p)
			n++
		}
	}
}

func (l *loader) send(n int, p *proc) {
	code, body, err := p.do(context.Background(), "POST", "/api/events/send", map[string]any{"sender": l.sender, "kwargs": map[string]any{"n": n}})
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil || code != 200 {
		l.failed++
		why := fmt.Sprint(err)
		if err == nil {
			why = fmt.Sprintf("%d %s", code, truncate(string(body), 200))
		}
		l.failures[why]++
		return
	}
	var res struct {
		EventID     string   `json:"eventId"`
		NodeIDs     []string `json:"nodeIds"`
		Subscribers []string `json:"subscribers"`
	}
	if json.Unmarshal(body, &res) != nil || len(res.NodeIDs) == 0 || len(res.NodeIDs) != len(res.Subscribers) {
		l.failed++
		l.failures["unexpected answer: "+truncate(string(body), 200)]++
		return
	}
	nodes := map[string]string{}
	for i, s := range res.Subscribers {
		nodes[s] = res.NodeIDs[i]
	}
	l.acked = append(l.acked, sent{n: n, eventID: res.EventID, nodes: nodes, host: p.index, answeredAt: time.Now()})
}

// wait waits until the loader has made every send (or stop was called) and every send answered.
func (l *loader) wait() { <-l.done }

// halt stops offering events and waits for the sends in flight.
func (l *loader) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
}

func (l *loader) snapshot() ([]sent, int, map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := map[string]int{}
	for k, v := range l.failures {
		f[k] = v
	}
	return append([]sent(nil), l.acked...), l.failed, f
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// query encodes a log query string.
func query(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v.Encode()
}

// hookServer is a webhook receiver that counts every delivery it gets, by event id and attempt,
// the moment it arrives, then answers 200 after delay: a slow handler whose runs are counted
// outside Trellis, so a host killed while waiting for the answer leaves a run behind.
type hookServer struct {
	srv   *httptest.Server
	delay time.Duration

	mu   sync.Mutex
	runs map[string][]int
}

func newHookServer(t *testing.T, delay time.Duration) *hookServer {
	h := &hookServer{delay: delay, runs: map[string][]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			ID      string `json:"id"`
			Attempt int    `json:"attempt"`
		}
		_ = json.NewDecoder(r.Body).Decode(&ev)
		h.mu.Lock()
		h.runs[ev.ID] = append(h.runs[ev.ID], ev.Attempt)
		h.mu.Unlock()
		select {
		case <-time.After(h.delay):
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookServer) snapshot() map[string][]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string][]int, len(h.runs))
	for k, v := range h.runs {
		out[k] = append([]int(nil), v...)
	}
	return out
}
