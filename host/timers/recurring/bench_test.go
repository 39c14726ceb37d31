package recurring_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/trellis-run/trellis/host/timers/recurring"
	"github.com/trellis-run/trellis/host/timers/recurring/redislock"
)

// BenchmarkTemplates10k is the target on the real clock: 10,000 cron templates (default
// policies: serial, fireOnce) on three Schedulers sharing one Redis, as three hosts would. Each
// iteration is one tick of every template; the cron is a 6-field every-5-seconds one so a run
// takes seconds, not minutes (TRELLIS_BENCH_CRON overrides it, e.g. "* * * * *" for one-minute
// ticks; TRELLIS_BENCH_TEMPLATES the count). It reports:
//   - lateness-p50-ms / p99 / max: from a tick's scheduled time (At) to its Fire call;
//   - duplicates: ticks run more than once (must be 0); missing: ticks never run (must be 0).
//
//	TRELLIS_TEST_REDIS=redis://127.0.0.1:6379/0 go test -run '^$' -bench Templates10k -benchtime 5x ./host/timers/recurring/
func BenchmarkTemplates10k(b *testing.B) {
	u := os.Getenv(envRedis)
	if u == "" {
		b.Skipf("%s is not set; export %s=redis://127.0.0.1:6379/0 to run the cluster benchmark", envRedis, envRedis)
	}
	n := 10000
	if s := os.Getenv("TRELLIS_BENCH_TEMPLATES"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil {
			b.Fatalf("TRELLIS_BENCH_TEMPLATES=%q: %v", s, err)
		}
		n = v
	}
	expr := "*/5 * * * * *"
	if s := os.Getenv("TRELLIS_BENCH_CRON"); s != "" {
		expr = s
	}
	opts, err := redis.ParseURL(u)
	if err != nil {
		b.Fatal(err)
	}
	prefix := "trellis:bench:recurring:" + randHex() + ":"
	admin := redis.NewClient(opts)
	defer func() {
		deleteKeys(admin, prefix)
		_ = admin.Close()
	}()

	var (
		mu       sync.Mutex
		runs     = map[time.Time]map[int]int{} // tick → template index → runs
		lateness []time.Duration
		done     = map[time.Time]chan struct{}{}
	)
	tickDone := func(at time.Time) chan struct{} {
		ch := done[at]
		if ch == nil {
			ch = make(chan struct{})
			done[at] = ch
		}
		return ch
	}
	fire := func(_ context.Context, t recurring.Tick) error {
		late := time.Since(t.At)
		i, err := strconv.Atoi(t.Template[len("tasks.Bench"):])
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		m := runs[t.At]
		if m == nil {
			m = map[int]int{}
			runs[t.At] = m
		}
		m[i]++
		lateness = append(lateness, late)
		if len(m) == n {
			close(tickDone(t.At))
		}
		return nil
	}

	templates := make([]recurring.Template, n)
	for i := range templates {
		templates[i] = recurring.Template{FullName: fmt.Sprintf("tasks.Bench%05d", i), Cron: expr, Version: "1"}
	}
	var scheds []*recurring.Scheduler
	ctx := context.Background()
	for range 3 {
		c := redis.NewClient(opts)
		defer func() { _ = c.Close() }()
		s, err := recurring.New(recurring.Options{Coordinator: redislock.New(c, prefix), Fire: fire})
		if err != nil {
			b.Fatal(err)
		}
		scheds = append(scheds, s)
		defer func() { _ = s.Stop(ctx) }()
	}
	var wg sync.WaitGroup
	for _, s := range scheds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Start(ctx); err != nil {
				b.Error(err)
			}
			if err := s.Sync(ctx, templates); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()

	// Measure from the first tick after every host has every template.
	next, err := recurring.NextTick(expr, 0, nil, time.Now().Add(200*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	first := next
	mu.Lock()
	lateness = nil
	mu.Unlock()
	b.ResetTimer()
	var measured []time.Time
	for range b.N {
		at := next
		measured = append(measured, at)
		mu.Lock()
		ch := tickDone(at)
		mu.Unlock()
		follow, _ := recurring.NextTick(expr, 0, nil, at)
		select {
		case <-ch:
		case <-time.After(time.Until(follow)):
		}
		next = follow
	}
	b.StopTimer()
	time.Sleep(time.Second) // let late duplicates, if any, show up

	mu.Lock()
	defer mu.Unlock()
	var dups, missing int
	var lat []time.Duration
	lat = append(lat, lateness...)
	for _, at := range measured {
		m := runs[at]
		missing += n - len(m)
		for _, c := range m {
			dups += c - 1
		}
	}
	// Only lateness of measured ticks counts (earlier ones may have raced the Syncs).
	_ = first
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "lateness-p50-ms")
	b.ReportMetric(pct(0.99), "lateness-p99-ms")
	b.ReportMetric(pct(1)-0, "lateness-max-ms")
	b.ReportMetric(float64(dups), "duplicates")
	b.ReportMetric(float64(missing), "missing")
	b.ReportMetric(float64(len(measured)*n), "ticks")
	if dups > 0 || missing > 0 {
		b.Errorf("%d duplicate and %d missing runs over %d ticks of %d templates", dups, missing, len(measured), n)
	}
}
