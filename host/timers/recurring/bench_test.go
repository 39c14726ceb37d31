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
// iteration is one tick of every template. The cron is a 6-field every-5-seconds one so a run
// takes seconds, not minutes; TRELLIS_BENCH_CRON overrides it ("* * * * *" for one-minute
// ticks) and TRELLIS_BENCH_TEMPLATES the count. It reports lateness-p50-ms, -p99-ms and -max-ms
// (from a tick's scheduled time, At, to its Fire call), duplicates (ticks run more than once)
// and missing (ticks never run); both must be 0. Run it with
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
		if err != nil || v < 1 {
			b.Fatalf("TRELLIS_BENCH_TEMPLATES=%q: want a positive number", s)
		}
		n = v
	}
	expr := "*/5 * * * * *"
	if s := os.Getenv("TRELLIS_BENCH_CRON"); s != "" {
		expr = s
	}
	newClient := func() *redis.Client {
		o, err := redis.ParseURL(u)
		if err != nil {
			b.Fatal(err)
		}
		return redis.NewClient(o)
	}
	prefix := "trellis:bench:recurring:" + randHex() + ":"
	admin := newClient()
	defer func() {
		deleteKeys(admin, prefix)
		_ = admin.Close()
	}()

	// What ran: per tick, runs per template, lateness of each run, and a channel closed when
	// every template ran.
	type tickRuns struct {
		runs map[int]int
		late []time.Duration
		done chan struct{}
	}
	var mu sync.Mutex
	ticks := map[time.Time]*tickRuns{}
	tickOf := func(at time.Time) *tickRuns { // mu held
		r := ticks[at]
		if r == nil {
			r = &tickRuns{runs: map[int]int{}, done: make(chan struct{})}
			ticks[at] = r
		}
		return r
	}
	fire := func(_ context.Context, t recurring.Tick) error {
		late := time.Since(t.At)
		i, err := strconv.Atoi(t.Template[len("tasks.Bench"):])
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		r := tickOf(t.At)
		r.runs[i]++
		r.late = append(r.late, late)
		if len(r.runs) == n && r.runs[i] == 1 {
			close(r.done)
		}
		return nil
	}

	templates := make([]recurring.Template, n)
	for i := range templates {
		templates[i] = recurring.Template{FullName: fmt.Sprintf("tasks.Bench%05d", i), Cron: expr, Version: "1"}
	}
	ctx := context.Background()
	var scheds []*recurring.Scheduler
	for range 3 {
		c := newClient()
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
	b.ResetTimer()
	var measured []time.Time
	for range b.N {
		at := next
		measured = append(measured, at)
		mu.Lock()
		done := tickOf(at).done
		mu.Unlock()
		next, _ = recurring.NextTick(expr, 0, nil, at)
		select {
		case <-done:
		case <-time.After(time.Until(next)): // the tick is incomplete: counted as missing below
		}
	}
	b.StopTimer()
	time.Sleep(time.Second) // late duplicates, if any, show up

	mu.Lock()
	defer mu.Unlock()
	var dups, missing int
	var lat []time.Duration
	for _, at := range measured {
		r := ticks[at]
		missing += n - len(r.runs)
		for _, c := range r.runs {
			dups += c - 1
		}
		lat = append(lat, r.late...)
	}
	slices.Sort(lat)
	ms := func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(ms(0.50), "lateness-p50-ms")
	b.ReportMetric(ms(0.99), "lateness-p99-ms")
	b.ReportMetric(ms(1), "lateness-max-ms")
	b.ReportMetric(float64(dups), "duplicates")
	b.ReportMetric(float64(missing), "missing")
	b.ReportMetric(float64(len(measured)*n), "ticks")
	if dups > 0 || missing > 0 {
		b.Errorf("%d duplicate and %d missing runs over %d ticks of %d templates", dups, missing, len(measured), n)
	}
}
