package isolate

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/jsvm"
)

// reportPercentiles adds p50 and p99 of the measured durations as custom metrics.
func reportPercentiles(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(d[len(d)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkIsolatedCallTrivial is the round trip of a trivial JS function through the pool:
// frames both ways over the pipes, the execution in the worker's VM, the supervisor's timers.
func BenchmarkIsolatedCallTrivial(b *testing.B) {
	p := newVMPool(b, 1)
	c := call("add", 2, 3)
	ctx := context.Background()
	for range 100 { // warm the worker's runtimes
		_, err := p.Execute(ctx, c)
		require.NoError(b, err)
	}
	durations := make([]time.Duration, 0, 1<<16)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		res, err := p.Execute(ctx, c)
		durations = append(durations, time.Since(start))
		if err != nil || res.Value == nil {
			b.Fatal(err)
		}
	}
	reportPercentiles(b, durations)
}

// BenchmarkIsolatedCallTrivialParallel is the same call from many goroutines on a pool of one
// worker per CPU: throughput rather than latency.
func BenchmarkIsolatedCallTrivialParallel(b *testing.B) {
	p := newVMPool(b, 0)
	c := call("add", 2, 3)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := p.Execute(context.Background(), c); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkInProcessCallTrivial is the same call on the in-process VM, for comparison.
func BenchmarkInProcessCallTrivial(b *testing.B) {
	vm, err := jsvm.New(jsvm.Options{Host: echoHost})
	require.NoError(b, err)
	b.Cleanup(func() { _ = vm.Close() })
	require.NoError(b, vm.Load(hostileSource("app1")))
	c := call("add", 2, 3)
	ctx := context.Background()
	durations := make([]time.Duration, 0, 1<<16)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		if _, err := vm.Execute(ctx, c); err != nil {
			b.Fatal(err)
		}
		durations = append(durations, time.Since(start))
	}
	reportPercentiles(b, durations)
}

// BenchmarkIsolatedRespawn measures what a killed worker costs the next execution: with no
// spare, the time from SIGKILL to a trivial call answered by its replacement (process start,
// handshake, source load, first run); with the default spare, the next call does not wait.
func BenchmarkIsolatedRespawn(b *testing.B) {
	for _, bc := range []struct {
		name   string
		spares int
	}{{"NoSpare", -1}, {"OneSpare", 1}} {
		b.Run(bc.name, func(b *testing.B) {
			p, err := New(Options{Workers: 1, Spares: bc.spares, Host: echoHost, Limits: jsvm.Limits{MemoryBytes: 64 << 20}})
			require.NoError(b, err)
			b.Cleanup(func() { _ = p.Close() })
			require.NoError(b, p.Load(hostileSource("app1")))
			trivial(b, p)
			durations := make([]time.Duration, 0, 256)
			for b.Loop() {
				w := waitIdle(b, p, bc.spares+1)
				start := time.Now()
				w.kill(nil)
				<-w.dead
				trivial(b, p)
				durations = append(durations, time.Since(start))
			}
			reportPercentiles(b, durations)
		})
	}
}

// waitIdle waits until the pool has n idle workers and returns the most recently used one.
func waitIdle(b *testing.B, p *Pool, n int) *proc {
	for {
		p.mu.Lock()
		ch := p.changed
		if len(p.open) >= n {
			w := p.open[len(p.open)-1]
			p.mu.Unlock()
			return w
		}
		p.mu.Unlock()
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			b.Fatal("no idle worker after 10s")
		}
	}
}
