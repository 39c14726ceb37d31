package timerstest

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellis-run/trellis/host/timers"
)

// EnvBenchN names the environment variable giving the pending tasks of the lateness benchmarks
// (default DefaultBenchN, so a plain `go test -bench` stays fast); the brief's figure is
// TRELLIS_BENCH_TIMERS_N=1000000.
const EnvBenchN = "TRELLIS_BENCH_TIMERS_N"

// DefaultBenchN is the pending tasks of a lateness benchmark when EnvBenchN is unset.
const DefaultBenchN = 10_000

// BenchN reads EnvBenchN.
func BenchN(b *testing.B) int {
	v := os.Getenv(EnvBenchN)
	if v == "" {
		return DefaultBenchN
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		b.Fatalf("%s=%q: want a number of tasks", EnvBenchN, v)
	}
	return n
}

// BenchCreate measures Create of one waiting task (with a Key on every other one, as date-field
// tasks have), from parallel goroutines.
func BenchCreate(b *testing.B, s timers.Store) {
	ctx := context.Background()
	start := time.Now().Add(24 * time.Hour)
	var seq atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			t := timers.Task{FullName: "tasks.Bench", FuncName: "run", TaskType: "once",
				StartTime: start.Add(time.Duration(i) * time.Millisecond), ArgDict: map[string]any{"rowId": i}}
			if i%2 == 0 {
				t.Key = "tasks.Bench:row:" + strconv.FormatInt(i, 10)
			}
			if _, _, err := s.Create(ctx, t); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FillPending creates n waiting tasks spread over the next 30 days (from an hour ahead), with 8
// goroutines, and returns how long it took.
func FillPending(ctx context.Context, s timers.Store, n int) (time.Duration, error) {
	began := time.Now()
	from := began.Add(time.Hour)
	span := 30 * 24 * time.Hour
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				at := from.Add(time.Duration(float64(span) * float64(i) / float64(max(n, 1))))
				t := timers.Task{FullName: "tasks.Later", FuncName: "run", TaskType: "once", StartTime: at,
					ArgDict: map[string]any{"rowId": i}, Key: fmt.Sprintf("tasks.Later:row:%d", i)}
				if _, _, err := s.Create(ctx, t); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return time.Since(began), <-errs
}

// LatenessResult is what MeasureLateness saw: fire time minus StartTime over the streamed tasks,
// and the Go heap of the process (after a GC) while the pending tasks were stored.
type LatenessResult struct {
	P50, P99, Max time.Duration
	HeapMiB       float64
	// RSSMiB is the resident memory of the whole process (Linux; 0 elsewhere): it also counts
	// what the Go heap does not, such as SQLite's page cache.
	RSSMiB float64
}

// rssMiB reads VmRSS from /proc/self/status.
func rssMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// MeasureLateness streams b.N tasks due soon (1 ms apart, each created 200 ms before it is due,
// as the host would, Notify included) through a Runner on s with default options, waits for all
// of them to fire and reports the lateness percentiles. Early fires fail the benchmark.
func MeasureLateness(b *testing.B, s timers.Store) LatenessResult {
	ctx := context.Background()
	var mu sync.Mutex
	late := make([]time.Duration, 0, b.N)
	all := make(chan struct{})
	var early atomic.Int64
	r, err := timers.NewRunner(timers.RunnerOptions{Store: s, Owner: "bench", Fire: func(_ context.Context, t timers.Task) (any, error) {
		d := time.Since(t.StartTime)
		if d < 0 {
			early.Add(1)
		}
		mu.Lock()
		late = append(late, d)
		if len(late) == b.N {
			close(all)
		}
		mu.Unlock()
		return nil, nil
	}})
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = r.Stop(sctx)
	}()
	b.ResetTimer()
	first := time.Now().Add(200 * time.Millisecond)
	for i := range b.N {
		at := first.Add(time.Duration(i) * time.Millisecond)
		if d := time.Until(at.Add(-200 * time.Millisecond)); d > 0 {
			time.Sleep(d)
		}
		if _, _, err := s.Create(ctx, timers.Task{FullName: "tasks.Soon", FuncName: "run", StartTime: at}); err != nil {
			b.Fatal(err)
		}
		r.Notify()
	}
	select {
	case <-all:
	case <-time.After(time.Minute):
		b.Fatalf("only %d of %d tasks fired within a minute", len(late), b.N)
	}
	b.StopTimer()
	if n := early.Load(); n > 0 {
		b.Fatalf("%d tasks fired before their start time", n)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(late)
	res := LatenessResult{P50: late[len(late)/2], P99: late[min(len(late)-1, len(late)*99/100)], Max: late[len(late)-1],
		HeapMiB: float64(ms.HeapAlloc) / (1 << 20), RSSMiB: rssMiB()}
	b.ReportMetric(float64(res.P50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(res.P99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(res.Max.Microseconds())/1000, "max-ms")
	b.ReportMetric(res.HeapMiB, "heap-MiB")
	b.ReportMetric(res.RSSMiB, "rss-MiB")
	return res
}
