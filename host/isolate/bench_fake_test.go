package isolate

import (
	"context"
	"testing"
	"time"

	"github.com/trellis-run/trellis/host/jsvm"
)

// BenchmarkProtocolRoundTrip is BenchmarkIsolatedCallTrivial with a fake executor in the worker:
// the cost of the pipes, frames and supervision alone.
func BenchmarkProtocolRoundTrip(b *testing.B) {
	p := newFakePool(b, Options{Workers: 1})
	c := jsvm.Call{Element: "x", Function: "echo", Args: []any{int64(2), int64(3)}}
	durations := make([]time.Duration, 0, 1<<16)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		if _, err := p.Execute(context.Background(), c); err != nil {
			b.Fatal(err)
		}
		durations = append(durations, time.Since(start))
	}
	reportPercentiles(b, durations)
}
