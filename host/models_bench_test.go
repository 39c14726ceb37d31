package host_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/modelrt"
	"github.com/trellis-run/trellis/host/timers"
)

// BenchmarkModelImportDateField imports rows (TRELLIS_BENCH_IMPORT_N, default 10,000) into a
// model with a date-field template, so each row also gets its pending task: the time to import
// them all and the host's heap afterwards. Set TRELLIS_TEST_REDIS / TRELLIS_TEST_POSTGRES to run
// on those backends too.
func BenchmarkModelImportDateField(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("TRELLIS_BENCH_IMPORT_N")); err == nil && v > 0 {
		n = v
	}
	type variant struct{ name, redis, db string }
	variants := []variant{{"embedded", "", ""}}
	if r, p := os.Getenv("TRELLIS_TEST_REDIS"), os.Getenv("TRELLIS_TEST_POSTGRES"); r != "" && p != "" {
		variants = append(variants, variant{"redis+postgres", r, p})
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			for range b.N {
				files := map[string]string{
					"app.json": fmt.Sprintf(`{"name": "imp%d"}`, time.Now().UnixNano()),
					"models/Order/e.json": `{"title": "Order", "type": "models.NormalType", "fields": [
						{"name": "title", "type": "Stext"}, {"name": "due", "type": "Datetime"}]}`,
					"tasks/Remind/e.json": `{"title": "Remind", "type": "tasks.NormalType", "repeatType": "dateField",
						"dateField": {"model": "models.Order", "field": "due", "offset": "-1h"}, "funcName": "remind"}`,
					"tasks/Remind/index.js": `exports.remind = function () {};`,
				}
				cfg := host.Config{Sandbox: host.SandboxInProcess, ServeEvents: true, RedisURL: v.redis}
				if v.db != "" {
					cfg.DBDSN = postgresSchema(b)
				}
				h := setup(b, cfg, files)
				rows := make([]map[string]any, n)
				base := time.Now().Add(48 * time.Hour)
				for i := range rows {
					rows[i] = map[string]any{"title": fmt.Sprintf("order %d", i), "due": base.Add(time.Duration(i) * time.Second).UnixMilli()}
				}
				start := time.Now()
				got, err := h.Models().Import(context.Background(), "models.Order", rows, modelrt.Caller{})
				require.NoError(b, err)
				require.Equal(b, n, got)
				elapsed := time.Since(start)
				page, err := h.Tasks().ListTasks(context.Background(), timers.ListQuery{FullName: "tasks.Remind", Status: "waiting", PageSize: 1})
				require.NoError(b, err)
				require.EqualValues(b, n, page["totalCount"], "one pending task per row")
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				b.ReportMetric(float64(n)/elapsed.Seconds(), "rows/s")
				b.ReportMetric(elapsed.Seconds(), "s/import")
				b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
			}
		})
	}
}
