package jsvm

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkCallTrivial measures one Execute of `exports.f = function (a) { return a }` on a warm
// pool, and reports the median per-call latency as p50-ns/op next to Go's mean.
func BenchmarkCallTrivial(b *testing.B) {
	vm := setup(b, Options{}, source(index("services.T", `exports.f = function (a) { return a }`)))
	ctx := context.Background()
	call := Call{Element: "services.T", Function: "f", Args: []any{int64(1)}}
	if _, err := vm.Execute(ctx, call); err != nil { // warm the pool
		b.Fatal(err)
	}
	durations := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := vm.Execute(ctx, call); err != nil {
			b.Fatal(err)
		}
		durations = append(durations, time.Since(start))
	}
	b.StopTimer()
	reportPercentiles(b, durations)
}

// BenchmarkCallParallel is BenchmarkCallTrivial from GOMAXPROCS goroutines (pool contention).
func BenchmarkCallParallel(b *testing.B) {
	vm := setup(b, Options{}, source(index("services.T", `exports.f = function (a) { return a }`)))
	call := Call{Element: "services.T", Function: "f", Args: []any{int64(1)}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := vm.Execute(context.Background(), call); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkCallAcrossElements measures A calling B through app.getElement (two runtimes, values
// copied both ways).
func BenchmarkCallAcrossElements(b *testing.B) {
	vm := setup(b, Options{}, source(
		index("services.A", `exports.f = function (a) { return app.getElement("services.B").g(a) }`),
		index("services.B", `exports.g = function (a) { return a }`),
	))
	ctx := context.Background()
	call := Call{Element: "services.A", Function: "f", Args: []any{map[string]any{"id": int64(1), "tags": []any{"x"}}}}
	durations := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := vm.Execute(ctx, call); err != nil {
			b.Fatal(err)
		}
		durations = append(durations, time.Since(start))
	}
	b.StopTimer()
	reportPercentiles(b, durations)
}

func reportPercentiles(b *testing.B, durations []time.Duration) {
	if len(durations) == 0 {
		return
	}
	slices.Sort(durations)
	b.ReportMetric(float64(durations[len(durations)/2].Nanoseconds()), "p50-ns/op")
	b.ReportMetric(float64(durations[len(durations)*99/100].Nanoseconds()), "p99-ns/op")
}

// BenchmarkIdleRuntimeMemory measures the heap one idle, warm runtime keeps (a runtime with the
// bindings, its element's module loaded and run once), as bytes/runtime.
func BenchmarkIdleRuntimeMemory(b *testing.B) {
	const perRound = 20
	var total float64
	for range b.N {
		b.StopTimer()
		src := source()
		for i := range perRound {
			name := fmt.Sprintf("services.E%d", i)
			src.Elements[name] = index(name, `const lib = {a: 1}; exports.f = function (a) { return a }`)
		}
		vm, err := New(Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := vm.Load(src); err != nil {
			b.Fatal(err)
		}
		before := heapInUse()
		b.StartTimer()
		for i := range perRound {
			if _, err := vm.Execute(context.Background(), Call{Element: fmt.Sprintf("services.E%d", i), Function: "f", Args: []any{1}}); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		total += float64(heapInUse()-before) / perRound
		runtime.KeepAlive(vm)
		_ = vm.Close()
		b.StartTimer()
	}
	b.ReportMetric(total/float64(b.N), "bytes/runtime")
}

func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// BenchmarkCompile measures Load of one element with a 200-line index.js (parse and compile,
// once per Load).
func BenchmarkCompile(b *testing.B) {
	var sb strings.Builder
	for i := range 200 {
		fmt.Fprintf(&sb, "exports.f%d = function (a, b) { const x = {n: a + %d, s: 'v' + b}; return x.n > 10 ? x : [x, a, b]; };\n", i, i)
	}
	src := source(index("services.Big", sb.String()))
	vm, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(sb.Len()))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := vm.Load(src); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewRuntime measures making a cold runtime (goja.New plus every binder), what a call
// pays when its element's pool is empty.
func BenchmarkNewRuntime(b *testing.B) {
	v, err := compileSource(source(index("services.E", `exports.f = a => a`)), 4, nil, programCache{})
	if err != nil {
		b.Fatal(err)
	}
	ev := v.elements["services.E"]
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := newRuntime(ev); err != nil {
			b.Fatal(err)
		}
	}
}
