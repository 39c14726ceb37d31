package host_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/backends"
)

// BenchmarkLoadApp1000 measures host.New on an app of 1,000 services: read, resolve and validate
// (target ≤ 1 s).
func BenchmarkLoadApp1000(b *testing.B) {
	dir := writeApp(b, genServices(1000))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := host.New(host.Config{AppDir: dir}, backends.Open); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHotReloadVisible measures how long after one element's file is written a call sees
// the new version, through the whole host (watcher, registry, sandbox), on an app of 1,000
// elements (target ≤ 200 ms).
func BenchmarkHotReloadVisible(b *testing.B) {
	for _, sandbox := range []string{host.SandboxInProcess, host.SandboxIsolated} {
		b.Run(sandbox, func(b *testing.B) {
			h := setup(b, host.Config{Sandbox: sandbox, Workers: 2, Watch: true}, genServices(1000))
			file := filepath.Join(h.Config().AppDir, "services/Svc0500/index.js")
			ctx := context.Background()
			var took []time.Duration
			b.ResetTimer()
			for i := 1; i <= b.N; i++ {
				src := fmt.Sprintf("const u = require(\"commons/util\");\nexports.version = function () { return %d; };\nexports.calc = function (x) { return u.twice(x); };\n", i)
				start := time.Now()
				require.NoError(b, os.WriteFile(file, []byte(src), 0o644))
				for {
					res, err := h.CallService(ctx, "services.Svc0500", "version", nil)
					require.NoError(b, err)
					if v, _ := res.Value.(int64); v == int64(i) {
						break
					}
					time.Sleep(time.Millisecond)
				}
				took = append(took, time.Since(start))
			}
			sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
			b.ReportMetric(float64(took[len(took)/2].Milliseconds()), "p50-ms")
			b.ReportMetric(float64(took[len(took)*95/100].Milliseconds()), "p95-ms")
		})
	}
}
