package redistimers

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/trellis-run/trellis/host/bus/redisbus/redistest"
	"github.com/trellis-run/trellis/host/timers/timerstest"
)

// TRELLIS_TEST_REDIS=redis://127.0.0.1:6379/0 go test -run '^$' -bench . -benchtime 2000x ./host/timers/redistimers/
// (TRELLIS_BENCH_TIMERS_N=1000000 for the brief's figure.) BenchmarkCreate uses the shared
// Redis; BenchmarkLateness a private redis-server, so its memory figure is the store's alone.

func BenchmarkCreate(b *testing.B) {
	url := redisURL(b)
	c := client(b, url)
	s := New(c, newPrefix(b, url))
	defer s.Close()
	timerstest.BenchCreate(b, s)
}

// lateness is the store the lateness benchmark fills once: Go calls a benchmark function
// several times while it settles b.N.
var lateness struct {
	once   sync.Once
	srv    *redistest.Server
	client *redis.Client
	s      *Store
	mib    float64
	err    error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if lateness.srv != nil {
		_ = lateness.client.Close()
		lateness.srv.Remove()
	}
	os.Exit(code)
}

func usedMemory(ctx context.Context, c *redis.Client) int64 {
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

func BenchmarkLateness(b *testing.B) {
	n := timerstest.BenchN(b)
	lateness.once.Do(func() {
		lateness.srv = redistest.New(b, "--save", "", "--appendonly", "no")
		opts, err := redis.ParseURL(lateness.srv.URL())
		if err != nil {
			lateness.err = err
			return
		}
		lateness.client = redis.NewClient(opts)
		lateness.s = New(lateness.client, "trellis:bench:timers:")
		ctx := context.Background()
		before := usedMemory(ctx, lateness.client)
		took, err := timerstest.FillPending(ctx, lateness.s, n)
		lateness.err = err
		used := usedMemory(ctx, lateness.client) - before
		lateness.mib = float64(used) / (1 << 20)
		b.Logf("filled %d pending tasks in %s (%.0f/s); Redis used_memory +%.1f MiB (%d B/task)",
			n, took, float64(n)/took.Seconds(), lateness.mib, used/int64(max(n, 1)))
	})
	if lateness.err != nil {
		b.Fatal(lateness.err)
	}
	timerstest.MeasureLateness(b, lateness.s)
	b.ReportMetric(lateness.mib, "redis-MiB")
}
