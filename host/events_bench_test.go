package host_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/engine"
)

// BenchmarkEventsEndToEnd measures sendEvent → handler → ack → log row for a trivial JS
// handler: events/s until every delivery is handled and its rows are in the log store, and the
// latency from send to handled at a fixed rate. Sub-benchmarks per bus and sandbox.
func BenchmarkEventsEndToEnd(b *testing.B) {
	type variant struct{ name, redis, sandbox string }
	variants := []variant{{"embedded/inprocess", "", host.SandboxInProcess}, {"embedded/isolated", "", host.SandboxIsolated}}
	if url := os.Getenv("TRELLIS_TEST_REDIS"); url != "" {
		variants = append(variants, variant{"redis/inprocess", url, host.SandboxInProcess}, variant{"redis/isolated", url, host.SandboxIsolated})
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			app := fmt.Sprintf("bench%d", time.Now().UnixNano())
			h := setup(b, host.Config{Sandbox: v.sandbox, Workers: 2, ServeEvents: true, RedisURL: v.redis}, map[string]string{
				"app.json":             fmt.Sprintf(`{"name": %q}`, app),
				"events/Tick/e.json":   `{"title": "Tick", "type": "events.NormalType", "sender": "bench", "retry": {"policy": "none"}}`,
				"events/Tick/index.js": `exports.handle = function (event) { return event.kwargs.n; };`,
			})
			ctx := context.Background()
			base := h.EventStats().Handled
			senders := 32
			if s := os.Getenv("TRELLIS_BENCH_SENDERS"); s != "" {
				fmt.Sscan(s, &senders)
			}
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for s := 0; s < senders; s++ {
				wg.Add(1)
				go func(s int) {
					defer wg.Done()
					for i := s; i < b.N; i += senders {
						_, err := h.SendEvent(ctx, engine.SendRequest{Sender: "bench", Kwargs: map[string]any{"n": int64(i)}})
						if err != nil {
							b.Error(err)
							return
						}
					}
				}(s)
			}
			wg.Wait()
			for h.EventStats().Handled-base < int64(b.N) {
				time.Sleep(time.Millisecond)
			}
			require.NoError(b, h.LogWriter().Flush(ctx))
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
		})
	}
}

// BenchmarkEventLatency sends events one at a time at a modest rate and reports the p50/p99 of
// send → handled, so queueing under load does not hide the latency of one event.
func BenchmarkEventLatency(b *testing.B) {
	h := setup(b, host.Config{Sandbox: host.SandboxInProcess, ServeEvents: true, RedisURL: os.Getenv("TRELLIS_TEST_REDIS")}, map[string]string{
		"app.json":             fmt.Sprintf(`{"name": "lat%d"}`, time.Now().UnixNano()),
		"events/Tick/e.json":   `{"title": "Tick", "type": "events.NormalType", "sender": "bench", "retry": {"policy": "none"}}`,
		"events/Tick/index.js": `exports.handle = function (event) { return 1; };`,
	})
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		before := h.EventStats().Handled
		start := time.Now()
		_, err := h.SendEvent(ctx, engine.SendRequest{Sender: "bench", Kwargs: map[string]any{}})
		require.NoError(b, err)
		for h.EventStats().Handled == before {
			time.Sleep(50 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
