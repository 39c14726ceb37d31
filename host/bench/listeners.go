package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/backends"
	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/redisconn"
)

// ListenersOptions configure `trellis bench listeners`: what an app of many listeners costs a
// host that does nothing (Redis connections, CPU, memory), and whether sendEvent to one of them
// is slower than in a small app.
type ListenersOptions struct {
	// Host is the configuration of the in-process host of the latency phase and the source of
	// the Redis URL and sandbox the idle hosts get. RedisURL is required.
	Host host.Config
	// Listeners are the app sizes measured [10, 1000].
	Listeners []int
	// Hosts are the cluster sizes of the idle phase [1, 3]: that many `trellis serve` processes
	// on the same Redis, each measured on its own.
	Hosts []int
	// Serve is the command line that starts one host (`trellis serve`); the bench adds --app,
	// --data, --addr and --redis. Nil skips the idle phase.
	Serve []string
	// Settle is how long the idle hosts run before they are measured, so that start-up work
	// (subscribing, the first claims and trims) is over [10s].
	Settle time.Duration
	// Window is how long idle CPU is measured [30s].
	Window time.Duration
	// Sends is how many events the latency phase sends, one at a time, to one listener [1000].
	Sends int
}

func (o ListenersOptions) withDefaults() ListenersOptions {
	if len(o.Listeners) == 0 {
		o.Listeners = []int{10, 1000}
	}
	if len(o.Hosts) == 0 {
		o.Hosts = []int{1, 3}
	}
	if o.Settle <= 0 {
		o.Settle = 10 * time.Second
	}
	if o.Window <= 0 {
		o.Window = 30 * time.Second
	}
	if o.Sends <= 0 {
		o.Sends = 1000
	}
	return o
}

// ListenersReport is what `trellis bench listeners` prints.
type ListenersReport struct {
	Bus     string
	Idle    []IdleRun
	Latency []LatencyRun
	Notes   []string
}

// IdleRun is one idle cluster: Listeners listeners, Hosts hosts, each host measured alone.
type IdleRun struct {
	Listeners, Hosts int
	PerHost          []IdleHost
}

// IdleHost is one `trellis serve` process of an idle cluster.
type IdleHost struct {
	// Conns is the Redis connections of the process: the clients of CLIENT LIST (every master
	// of a cluster) whose address is one of the process's sockets.
	Conns int
	// CPU is the process's CPU time over the window, in % of one core.
	CPU float64
	// RSSMiB is the process's resident set at the end of the window.
	RSSMiB float64
	// Goroutines is the process's goroutines (go_goroutines of its /metrics).
	Goroutines int
}

// LatencyRun is sendEvent to one listener of an app of Listeners listeners: send → the host
// counted the delivery handled, one event at a time.
type LatencyRun struct {
	Listeners          int
	Sends              int
	P50, P90, P99, Max time.Duration
}

// Listeners runs the idle phase for each app size and cluster size, then the latency phase for
// each app size.
func Listeners(ctx context.Context, o ListenersOptions) (ListenersReport, error) {
	o = o.withDefaults()
	rep := ListenersReport{Bus: "redis"}
	if o.Host.RedisURL == "" {
		return rep, errors.New("bench listeners: --redis is required (the costs measured are those of the Redis bus)")
	}
	conn, err := redisconn.ParseURL(o.Host.RedisURL)
	if err != nil {
		return rep, err
	}
	if conn.Kind() == redisconn.Cluster {
		rep.Bus = "redis-cluster"
	}
	rdb := conn.NewClient()
	defer rdb.Close()
	tmp, err := os.MkdirTemp("", "trellis-bench-listeners-")
	if err != nil {
		return rep, err
	}
	defer os.RemoveAll(tmp)

	if o.Serve != nil {
		for _, n := range o.Listeners {
			for _, hosts := range o.Hosts {
				run, err := idle(ctx, o, rdb, filepath.Join(tmp, fmt.Sprintf("idle-%d-%d", n, hosts)), n, hosts)
				if err != nil {
					return rep, fmt.Errorf("idle, %d listeners on %d hosts: %w", n, hosts, err)
				}
				rep.Idle = append(rep.Idle, run)
			}
		}
		rep.Notes = append(rep.Notes, fmt.Sprintf("idle: each host is a `trellis serve` process (sandbox %s; its worker processes are not counted), measured %s after its health answered, CPU over %s",
			sandboxName(o.Host.Sandbox), o.Settle, o.Window))
	}
	for _, n := range o.Listeners {
		run, err := sendLatency(ctx, o, filepath.Join(tmp, fmt.Sprintf("latency-%d", n)), n)
		if err != nil {
			return rep, fmt.Errorf("latency, %d listeners: %w", n, err)
		}
		rep.Latency = append(rep.Latency, run)
	}
	rep.Notes = append(rep.Notes, "latency: one in-process host; each sendEvent waits for the previous event to be handled; the wait is polled every 20µs")
	return rep, nil
}

func sandboxName(s string) string {
	if s == "" {
		return "isolated"
	}
	return s
}

// listenersApp writes an app of n pool listeners, events.L0 … events.L<n-1>, listener i on
// sender "bench.l<i>", and returns its name (unique, so its Redis keys are its own).
func listenersApp(dir string, n int) (string, error) {
	name := fmt.Sprintf("bench%d", time.Now().UnixNano())
	files := map[string]string{"app.json": fmt.Sprintf(`{"name": %q}`, name)}
	for i := range n {
		files[fmt.Sprintf("events/L%d/e.json", i)] = fmt.Sprintf(
			`{"title": "L%d", "type": "events.NormalType", "sender": "bench.l%d", "retry": {"policy": "none"}}`, i, i)
		files[fmt.Sprintf("events/L%d/index.js", i)] = `exports.handle = function (event) { return event.kwargs.n; };`
	}
	return name, writeFiles(dir, files)
}

// idle starts hosts `trellis serve` processes on an app of n listeners, lets them settle and
// measures each.
func idle(ctx context.Context, o ListenersOptions, rdb redis.UniversalClient, dir string, n, hosts int) (IdleRun, error) {
	run := IdleRun{Listeners: n, Hosts: hosts}
	appDir := filepath.Join(dir, "app")
	name, err := listenersApp(appDir, n)
	if err != nil {
		return run, err
	}
	defer deleteKeys(context.Background(), rdb, "trellis:"+name+":*")
	var procs []*exec.Cmd
	var ports []int
	defer func() {
		for _, p := range procs {
			_ = p.Process.Signal(syscall.SIGTERM)
		}
		for _, p := range procs {
			done := make(chan struct{})
			go func() { _ = p.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				_ = p.Process.Kill()
				<-done
			}
		}
	}()
	for h := range hosts {
		port, err := freePort()
		if err != nil {
			return run, err
		}
		args := append(slices.Clone(o.Serve[1:]), "--app", appDir, "--data", filepath.Join(dir, fmt.Sprintf("data%d", h)),
			"--addr", fmt.Sprintf("127.0.0.1:%d", port), "--redis", o.Host.RedisURL)
		if o.Host.Sandbox != "" {
			args = append(args, "--sandbox", o.Host.Sandbox)
		}
		cmd := exec.CommandContext(ctx, o.Serve[0], args...)
		cmd.Env = append(os.Environ(), "TRELLIS_ADMIN_TOKEN="+idleToken, "TRELLIS_LOG_LEVEL=warn")
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("host%d.log", h)))
		if err != nil {
			return run, err
		}
		defer logf.Close()
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			return run, err
		}
		procs, ports = append(procs, cmd), append(ports, port)
		if err := waitHealthy(ctx, port, 2*time.Minute); err != nil {
			return run, fmt.Errorf("host %d: %w (its output is in %s)", h, err, logf.Name())
		}
	}
	select {
	case <-time.After(o.Settle):
	case <-ctx.Done():
		return run, ctx.Err()
	}
	before := make([]float64, len(procs))
	for i, p := range procs {
		if before[i], err = cpuSeconds(p.Process.Pid); err != nil {
			return run, err
		}
	}
	start := time.Now()
	select {
	case <-time.After(o.Window):
	case <-ctx.Done():
		return run, ctx.Err()
	}
	elapsed := time.Since(start).Seconds()
	clients, err := clientAddrs(ctx, rdb)
	if err != nil {
		return run, err
	}
	for i, p := range procs {
		after, err := cpuSeconds(p.Process.Pid)
		if err != nil {
			return run, err
		}
		st := IdleHost{CPU: 100 * (after - before[i]) / elapsed}
		if st.RSSMiB, err = rss(p.Process.Pid); err != nil {
			return run, err
		}
		if st.Goroutines, err = goroutines(ctx, ports[i]); err != nil {
			return run, err
		}
		local, err := socketPorts(p.Process.Pid)
		if err != nil {
			return run, err
		}
		for _, addr := range clients {
			if _, port, ok := strings.Cut(addr, ":"); ok && local[port] {
				st.Conns++
			}
		}
		run.PerHost = append(run.PerHost, st)
	}
	return run, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitHealthy(ctx context.Context, port int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	url := fmt.Sprintf("http://127.0.0.1:%d/api/health", port)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return fmt.Errorf("no healthy answer on port %d within %s", port, timeout)
}

// cpuSeconds is the user + system CPU time of a process (/proc/PID/stat).
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: count fields after its closing parenthesis.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("bench: short /proc/%d/stat", pid)
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / clockTicks, nil
}

// clockTicks is USER_HZ, 100 on every Linux this runs on (getconf CLK_TCK).
const clockTicks = 100

// rss is a process's resident set in MiB (VmRSS of /proc/PID/status).
func rss(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			fs := strings.Fields(v)
			if len(fs) > 0 {
				kb, err := strconv.ParseFloat(fs[0], 64)
				return kb / 1024, err
			}
		}
	}
	return 0, fmt.Errorf("bench: no VmRSS in /proc/%d/status", pid)
}

// goroutines reads go_goroutines from a host's /metrics.
func goroutines(ctx context.Context, port int) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/metrics", port), nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+idleToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("bench: no go_goroutines in the /metrics of the host on port %d (HTTP %d)", port, resp.StatusCode)
}

// idleToken is the admin token of the idle hosts.
const idleToken = "bench-listeners"

// socketPorts is the local TCP ports of the process's sockets: its fds' socket inodes looked
// up in /proc/net/tcp and tcp6.
func socketPorts(pid int) (map[string]bool, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	ports := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || !inodes[f[9]] {
				continue
			}
			_, hexPort, _ := strings.Cut(f[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); err == nil {
				ports[strconv.FormatUint(p, 10)] = true
			}
		}
	}
	return ports, nil
}

// clientAddrs is the addr= of every client in CLIENT LIST (of every master of a cluster).
func clientAddrs(ctx context.Context, rdb redis.UniversalClient) ([]string, error) {
	var mu sync.Mutex
	var out []string
	list := func(ctx context.Context, c *redis.Client) error {
		s, err := c.ClientList(ctx).Result()
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, line := range strings.Split(s, "\n") {
			for _, f := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(f, "addr="); ok {
					out = append(out, v)
				}
			}
		}
		return nil
	}
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		return out, c.ForEachMaster(ctx, list)
	case *redis.Client:
		return out, list(ctx, c)
	}
	return nil, fmt.Errorf("bench: unexpected Redis client %T", rdb)
}

// deleteKeys removes the keys matching pattern (SCAN + UNLINK on every master, 500 keys a call).
func deleteKeys(ctx context.Context, rdb redis.UniversalClient, pattern string) {
	del := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		var batch []string
		for iter.Next(ctx) {
			if batch = append(batch, iter.Val()); len(batch) == 500 {
				c.Unlink(ctx, batch...)
				batch = batch[:0]
			}
		}
		if len(batch) > 0 {
			c.Unlink(ctx, batch...)
		}
		return iter.Err()
	}
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		_ = c.ForEachMaster(ctx, del)
	case *redis.Client:
		_ = del(ctx, c)
	}
}

// sendLatency starts an in-process host on an app of n listeners and sends events to one of
// them, one at a time.
func sendLatency(ctx context.Context, o ListenersOptions, dir string, n int) (LatencyRun, error) {
	run := LatencyRun{Listeners: n, Sends: o.Sends}
	cfg := o.Host
	cfg.ServeEvents = true
	cfg.AppDir, cfg.DataDir = filepath.Join(dir, "app"), filepath.Join(dir, "data")
	name, err := listenersApp(cfg.AppDir, n)
	if err != nil {
		return run, err
	}
	if conn, err := redisconn.ParseURL(cfg.RedisURL); err == nil {
		rdb := conn.NewClient()
		defer rdb.Close()
		defer deleteKeys(context.Background(), rdb, "trellis:"+name+":*")
	}
	h, err := host.New(cfg, backends.Open)
	if err != nil {
		return run, err
	}
	if err := h.Start(ctx); err != nil {
		return run, err
	}
	defer h.Stop(context.Background())
	// The middle listener: not the first or last one any list of the host holds.
	sender := fmt.Sprintf("bench.l%d", n/2)
	one := func(i int) (time.Duration, error) {
		base := h.EventStats().Handled
		start := time.Now()
		if _, err := h.SendEvent(ctx, engine.SendRequest{Sender: sender, Kwargs: map[string]any{"n": int64(i)}}); err != nil {
			return 0, err
		}
		deadline := start.Add(time.Minute)
		for h.EventStats().Handled <= base {
			if time.Now().After(deadline) {
				return 0, errors.New("an event was not handled within a minute")
			}
			time.Sleep(20 * time.Microsecond)
		}
		return time.Since(start), nil
	}
	for i := range 100 { // warm-up: runtimes, connections
		if _, err := one(i); err != nil {
			return run, err
		}
	}
	lat := make([]time.Duration, 0, o.Sends)
	for i := range o.Sends {
		d, err := one(i)
		if err != nil {
			return run, err
		}
		lat = append(lat, d)
	}
	slices.Sort(lat)
	run.P50, run.P90, run.P99, run.Max = lat[len(lat)/2], lat[len(lat)*9/10], lat[len(lat)*99/100], lat[len(lat)-1]
	return run, nil
}

// String renders the report as `trellis bench listeners` prints it.
func (r ListenersReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "bus=%s\n", r.Bus)
	for _, run := range r.Idle {
		for i, h := range run.PerHost {
			fmt.Fprintf(&b, "idle: %d listeners, host %d of %d: %d Redis connections, CPU %.2f%% of a core, RSS %.0f MiB, %d goroutines\n",
				run.Listeners, i+1, run.Hosts, h.Conns, h.CPU, h.RSSMiB, h.Goroutines)
		}
	}
	for _, l := range r.Latency {
		fmt.Fprintf(&b, "sendEvent to one of %d listeners (%d sends, one at a time): p50 %s  p90 %s  p99 %s  max %s\n",
			l.Listeners, l.Sends, ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	return b.String()
}
