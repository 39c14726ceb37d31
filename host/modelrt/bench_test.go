package modelrt_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/modelrt"
)

// BenchmarkCreate is one create through the runtime on SQLite: Plain has no index.js, Order runs
// beforeSave and afterSave in the in-process sandbox. Emit and DateFields are recorders.
func BenchmarkCreate(b *testing.B) {
	for _, model := range []string{"models.Plain", "models.Order"} {
		b.Run(model, func(b *testing.B) {
			bb := setup(b, openSQLite, nil)
			ctx := context.Background()
			row := map[string]any{"title": "bench", "name": "bench"}
			if model == "models.Order" {
				delete(row, "name")
			} else {
				delete(row, "title")
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := bb.rt.Create(ctx, model, row, modelrt.Caller{}); err != nil {
					b.Fatal(err)
				}
				if i%1000 == 999 {
					bb.take() // keep the recorder small
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkImport10k imports 10,000 rows into SQLite through the runtime (chunks, one event and
// one DateFields call per row).
func BenchmarkImport10k(b *testing.B) {
	const n = 10_000
	rows := make([]map[string]any, n)
	for i := range rows {
		rows[i] = map[string]any{"title": fmt.Sprintf("r%d", i), "qty": i, "dueDate": "2030-01-01 00:00:00"}
	}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		bb := setup(b, openSQLite, nil)
		b.StartTimer()
		got, err := bb.rt.Import(context.Background(), "models.Order", rows, modelrt.Caller{})
		require.NoError(b, err)
		require.Equal(b, n, got)
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
}
