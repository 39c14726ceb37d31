package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/backends"
	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/redisconn"
	"github.com/trellis-run/trellis/logstore"
)

// EventsOptions configure `trellis bench events`.
type EventsOptions struct {
	// Host is the configuration of the host under test; AppDir and DataDir are filled in with
	// temporary directories when empty. ServeEvents is always on.
	Host host.Config
	// Events is how many events the throughput phase sends (default 50,000), from Senders
	// concurrent callers (default 64).
	Events, Senders int
	// Rate and Duration drive the latency phase: events offered at Rate per second for
	// Duration, one at a time on a clock (defaults 5,000/s for 5 s; Rate 0 skips the phase).
	Rate     int
	Duration time.Duration
	// XADDBaseline runs redis-benchmark's pipelined XADD against the same Redis, when it is
	// installed and Redis is configured, so the report can give throughput as a fraction of it.
	XADDBaseline bool
	// Hosts is how many hosts of one cluster run in this process (default 1): each its own data
	// directory on the same Redis (required past 1) and log, the senders spread over them, every
	// host handling. They share this machine's cores, as hosts of a cluster on one machine do.
	Hosts int
}

func (o EventsOptions) withDefaults() EventsOptions {
	if o.Events <= 0 {
		o.Events = 50000
	}
	if o.Senders <= 0 {
		o.Senders = 64
	}
	if o.Rate < 0 {
		o.Rate = 0
	}
	if o.Duration <= 0 {
		o.Duration = 5 * time.Second
	}
	if o.Hosts <= 0 {
		o.Hosts = 1
	}
	return o
}

// EventsReport is what `trellis bench events` prints.
type EventsReport struct {
	Bus, Log, Sandbox string
	Hosts             int
	// Throughput phase: Events sent and handled, every log row in the store, in Elapsed.
	Events        int
	Elapsed       time.Duration
	EventsPerSec  float64
	RedisCommands int64   // Redis commands the phase caused (INFO commandstats), 0 without Redis
	CommandsPer   float64 // RedisCommands / Events
	// Latency phase: send → handler done (the done row's endTime − the node's createdAt, read
	// from the rows as the host hands them to the log writer, to the microsecond).
	Rate              int
	Offered, Measured int
	P50, P99, Max     time.Duration
	AchievedRate      float64
	XADDPerSec        float64 // redis-benchmark pipelined XADD, 0 when not measured
	FractionOfXADD    float64
	Notes             []string
}

const (
	throughputListener = "events.Tick"
	latencyListener    = "events.Lat"
)

// appFiles is the throwaway app: one trivial listener per phase.
var appFiles = map[string]string{
	"events/Tick/e.json":   `{"title": "Tick", "type": "events.NormalType", "sender": "bench.tick", "retry": {"policy": "none"}}`,
	"events/Tick/index.js": `exports.handle = function (event) { return event.kwargs.n; };`,
	"events/Lat/e.json":    `{"title": "Latency", "type": "events.NormalType", "sender": "bench.lat", "retry": {"policy": "none"}}`,
	"events/Lat/index.js":  `exports.handle = function (event) { return event.kwargs.n; };`,
}

// Events runs the throughput phase, then the latency phase, and reports both.
func Events(ctx context.Context, o EventsOptions) (EventsReport, error) {
	o = o.withDefaults()
	cfg := o.Host
	cfg.ServeEvents = true
	tmp, err := os.MkdirTemp("", "trellis-bench-")
	if err != nil {
		return EventsReport{}, err
	}
	defer os.RemoveAll(tmp)
	if cfg.AppDir == "" {
		cfg.AppDir = filepath.Join(tmp, "app")
		app := fmt.Sprintf("bench%d", time.Now().UnixNano())
		if cfg.RedisURL != "" {
			// The throwaway app's keys go with it, once its hosts have stopped (this defer runs
			// after theirs): streams, task store, request sets (a week's retention otherwise).
			defer dropKeys(cfg.RedisURL, "trellis:"+app+":*")
		}
		files := map[string]string{"app.json": fmt.Sprintf(`{"name": %q}`, app)}
		for k, v := range appFiles {
			files[k] = v
		}
		if err := writeFiles(cfg.AppDir, files); err != nil {
			return EventsReport{}, err
		}
	}
	if cfg.DataDir == "" {
		cfg.DataDir = filepath.Join(tmp, "data")
	}
	lat := &latencies{}
	cfg.ObserveRows = lat.observe
	if o.Hosts > 1 && cfg.RedisURL == "" {
		return EventsReport{}, fmt.Errorf("bench: --hosts %d needs --redis: hosts of a cluster share the bus", o.Hosts)
	}
	var hs []*host.Host
	for i := range o.Hosts {
		hc := cfg
		if i > 0 {
			hc.DataDir = fmt.Sprintf("%s-%d", cfg.DataDir, i)
			hc.LogSpoolDir = ""
		}
		h, err := host.New(hc, backends.Open)
		if err != nil {
			return EventsReport{}, err
		}
		if err := h.Start(ctx); err != nil {
			return EventsReport{}, err
		}
		defer h.Stop(context.Background())
		hs = append(hs, h)
	}
	h := hs[0]
	rep := EventsReport{Bus: "embedded", Log: "embedded", Sandbox: h.Config().Sandbox, Events: o.Events, Rate: o.Rate, Hosts: o.Hosts}
	var rdb redis.UniversalClient
	if cfg.RedisURL != "" {
		rep.Bus = "redis"
		conn, err := redisconn.ParseURL(cfg.RedisURL)
		if err != nil {
			return rep, err
		}
		if conn.Kind() == redisconn.Cluster {
			rep.Bus = "redis-cluster"
		}
		rdb = conn.NewClient()
		defer rdb.Close()
	}
	if cfg.ClickHouseDSN != "" {
		rep.Log = "clickhouse"
	}

	// Warm up: the first events pay for runtimes and connections.
	if err := send(ctx, hs, "bench.tick", 200, 8); err != nil {
		return rep, err
	}
	if err := waitHandled(ctx, hs, 200); err != nil {
		return rep, err
	}
	before, _ := commandCount(ctx, rdb)
	base := handled(hs)
	start := time.Now()
	if err := send(ctx, hs, "bench.tick", o.Events, o.Senders); err != nil {
		return rep, err
	}
	if err := waitHandled(ctx, hs, base+int64(o.Events)); err != nil {
		return rep, err
	}
	for _, h := range hs {
		if err := h.LogWriter().Flush(ctx); err != nil {
			return rep, err
		}
	}
	rep.Elapsed = time.Since(start)
	rep.EventsPerSec = float64(o.Events) / rep.Elapsed.Seconds()
	if rdb != nil {
		after, err := commandCount(ctx, rdb)
		if err == nil {
			rep.RedisCommands = after - before
			rep.CommandsPer = float64(rep.RedisCommands) / float64(o.Events)
			rep.Notes = append(rep.Notes, "Redis commands are counted over the whole server (INFO commandstats): other clients of the same Redis add to them.")
		}
	}

	if o.Rate > 0 {
		if err := latency(ctx, hs, o, lat, &rep); err != nil {
			return rep, err
		}
	}
	if one, ok := rdb.(*redis.Client); ok && o.XADDBaseline && !isFailover(cfg.RedisURL) {
		rate, err := xaddBaseline(ctx, one)
		if err != nil {
			rep.Notes = append(rep.Notes, "redis-benchmark XADD baseline not measured: "+err.Error())
		} else {
			rep.XADDPerSec = rate
			rep.FractionOfXADD = rep.EventsPerSec / rate
		}
	}
	return rep, nil
}

func writeFiles(dir string, files map[string]string) error {
	for name, text := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// send sends n events from senders concurrent callers, spread over the hosts.
func send(ctx context.Context, hs []*host.Host, sender string, n, senders int) error {
	var wg sync.WaitGroup
	errs := make([]error, senders)
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			h := hs[s%len(hs)]
			for i := s; i < n; i += senders {
				if _, err := h.SendEvent(ctx, engine.SendRequest{Sender: sender, Kwargs: map[string]any{"n": int64(i)}}); err != nil {
					errs[s] = err
					return
				}
			}
		}(s)
	}
	wg.Wait()
	return errors.Join(errs...)
}

// handled is the deliveries the hosts have handled since they started.
func handled(hs []*host.Host) int64 {
	var n int64
	for _, h := range hs {
		n += h.EventStats().Handled
	}
	return n
}

// waitHandled waits until the hosts have handled total deliveries since they started.
func waitHandled(ctx context.Context, hs []*host.Host, total int64) error {
	deadline := time.Now().Add(10 * time.Minute)
	for handled(hs) < total {
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: only %d of %d events handled after 10 minutes", handled(hs), total)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// latency offers events at o.Rate for o.Duration on a clock and reads each node's send → done
// time from the log.
func latency(ctx context.Context, hs []*host.Host, o EventsOptions, lat *latencies, rep *EventsReport) error {
	total := int(float64(o.Rate) * o.Duration.Seconds())
	base := handled(hs)
	lat.start()
	start := time.Now()
	interval := time.Second / time.Duration(o.Rate)
	// A few pacers share the schedule so one slow send does not hold the clock back.
	const pacers = 16
	var wg sync.WaitGroup
	errs := make([]error, pacers)
	for p := 0; p < pacers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			h := hs[p%len(hs)]
			for i := p; i < total; i += pacers {
				if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
					time.Sleep(d)
				}
				if _, err := h.SendEvent(ctx, engine.SendRequest{Sender: "bench.lat", Kwargs: map[string]any{"n": int64(i)}}); err != nil {
					errs[p] = err
					return
				}
			}
		}(p)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	rep.AchievedRate = float64(total) / time.Since(start).Seconds()
	rep.Offered = total
	if err := waitHandled(ctx, hs, base+int64(total)); err != nil {
		return err
	}
	// A node counts as handled once its rows are written; wait for the last ones' observation.
	for deadline := time.Now().Add(5 * time.Second); lat.count() < total && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	got := lat.stop()
	if len(got) == 0 {
		return errors.New("bench: the latency phase saw no done row")
	}
	slices.Sort(got)
	rep.Measured = len(got)
	rep.P50, rep.P99, rep.Max = got[len(got)/2], got[len(got)*99/100], got[len(got)-1]
	return nil
}

// latencies collects, while started, the send → handler done time of each done row of the
// latency listener the hosts write, from the row in memory (nanoseconds; the log keeps ms).
type latencies struct {
	mu  sync.Mutex
	on  bool
	got []time.Duration
}

func (l *latencies) start() {
	l.mu.Lock()
	l.on, l.got = true, nil
	l.mu.Unlock()
}

func (l *latencies) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.got)
}

func (l *latencies) stop() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.on = false
	return l.got
}

func (l *latencies) observe(rows []logstore.Row) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.on {
		return
	}
	for i := range rows {
		r := &rows[i]
		if r.FullName == latencyListener && r.Status == logstore.StatusSuccess && r.Stage == logstore.StageDone {
			l.got = append(l.got, r.EndTime.Sub(r.CreatedAt))
		}
	}
}

// commandCount is the server's total of commands processed.
// isFailover says whether url names a master through Sentinel, whose address redis-benchmark
// cannot be given.
func isFailover(url string) bool {
	conn, err := redisconn.ParseURL(url)
	return err == nil && conn.Kind() == redisconn.Sentinel
}

// commandCount is the commands the Redis server (every master of a cluster) has processed.
func commandCount(ctx context.Context, rdb redis.UniversalClient) (int64, error) {
	if rdb == nil {
		return 0, nil
	}
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		var total atomic.Int64
		err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			n, err := commandCount(ctx, m)
			total.Add(n)
			return err
		})
		return total.Load(), err
	}
	info, err := rdb.Info(ctx, "stats").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_commands_processed:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("bench: INFO stats has no total_commands_processed")
}

// xaddBaseline runs redis-benchmark's pipelined XADD on a throwaway stream and returns its
// requests per second.
func xaddBaseline(ctx context.Context, rdb *redis.Client) (float64, error) {
	bin, err := exec.LookPath("redis-benchmark")
	if err != nil {
		return 0, errors.New("redis-benchmark is not installed (apt-get install redis-tools)")
	}
	o := rdb.Options()
	hostPort := strings.SplitN(o.Addr, ":", 2)
	key := fmt.Sprintf("trellis:bench:xadd:%d", time.Now().UnixNano())
	defer rdb.Del(context.Background(), key)
	args := []string{"-h", hostPort[0], "-p", hostPort[1], "-n", "200000", "-P", "64", "-c", "8", "-q", "--csv"}
	if o.Password != "" {
		args = append(args, "-a", o.Password)
	}
	args = append(args, "XADD", key, "MAXLEN", "~", "100000", "*", "payload", strings.Repeat("x", 200))
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("redis-benchmark: %v: %s", err, out)
	}
	// --csv prints "test","rps",...; the last line holds our command.
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	fields := strings.Split(lines[len(lines)-1], ",")
	if len(fields) < 2 {
		return 0, fmt.Errorf("redis-benchmark: unexpected output %q", out)
	}
	return strconv.ParseFloat(strings.Trim(fields[1], `"`), 64)
}

// String renders the report as `trellis bench events` prints it.
func (r EventsReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "bus=%s log=%s sandbox=%s hosts=%d\n", r.Bus, r.Log, r.Sandbox, max(r.Hosts, 1))
	fmt.Fprintf(&b, "throughput: %d events in %s = %.0f events/s (sendEvent → handler → ack → log row)\n", r.Events, r.Elapsed.Round(time.Millisecond), r.EventsPerSec)
	if r.RedisCommands > 0 {
		fmt.Fprintf(&b, "redis: %d commands = %.2f per event\n", r.RedisCommands, r.CommandsPer)
	}
	if r.Measured > 0 {
		fmt.Fprintf(&b, "latency at %d/s offered (%.0f/s achieved, %d events): p50 %s  p99 %s  max %s (send → handler done)\n",
			r.Rate, r.AchievedRate, r.Measured, ms(r.P50), ms(r.P99), ms(r.Max))
	}
	if r.XADDPerSec > 0 {
		fmt.Fprintf(&b, "redis-benchmark pipelined XADD: %.0f/s; throughput = %.1f%% of it\n", r.XADDPerSec, 100*r.FractionOfXADD)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	return b.String()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d.Microseconds())/1000) }

// dropKeys deletes the keys matching pattern (deleteKeys) with a client of its own, once the
// hosts and the bench's client are gone. Best effort: a bench's result does not depend on it.
func dropKeys(redisURL, pattern string) {
	conn, err := redisconn.ParseURL(redisURL)
	if err != nil {
		return
	}
	rdb := conn.NewClient()
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	deleteKeys(ctx, rdb, pattern)
}
