package modelstest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/models"
)

// benchRows builds n rows of the every-type schema, already coerced, as a bulk import gives them.
func benchRows(b *testing.B, s models.Schema, n int) []models.Row {
	b.Helper()
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	statuses := []string{"new", "paid", "shipped", "cancelled"}
	rows := make([]models.Row, n)
	for i := range rows {
		r, err := models.Coerce(s, map[string]any{
			"title":   fmt.Sprintf("order %d", i),
			"notes":   statuses[i%len(statuses)],
			"qty":     i % 1000,
			"price":   float64(i%5000) / 100,
			"paid":    i%3 == 0,
			"dueDate": base.AddDate(0, 0, i%365).Format(models.DateLayout),
			"paidAt":  base.Add(time.Duration(i) * time.Minute),
			"meta":    map[string]any{"source": "import", "line": i},
		}, time.UTC, true)
		require.NoError(b, err)
		rows[i] = r
	}
	return rows
}

// BenchInsertMany measures InsertMany of n rows into a fresh model per iteration and reports
// rows/s. The store is the caller's.
func BenchInsertMany(b *testing.B, st models.Store, n int) {
	ctx := context.Background()
	run := randomID()
	s0, err := models.SchemaOf("models.BenchInsert", orderDefinition())
	require.NoError(b, err)
	rows := benchRows(b, s0, n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := s0
		s.Model = fmt.Sprintf("models.BenchInsert_%s_%d", run, i)
		require.NoError(b, st.Ensure(ctx, s))
		b.StartTimer()
		out, err := st.InsertMany(ctx, s, rows)
		require.NoError(b, err)
		require.Len(b, out, n)
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchQueryFiltered measures a typical list page — a filter on three fields with an or, sorted
// by a datetime, 20 rows with the total count — over a model of n rows, and reports queries/s.
func BenchQueryFiltered(b *testing.B, st models.Store, n int) {
	ctx := context.Background()
	s, err := models.SchemaOf("models.BenchQuery_"+randomID(), orderDefinition())
	require.NoError(b, err)
	require.NoError(b, st.Ensure(ctx, s))
	_, err = st.InsertMany(ctx, s, benchRows(b, s, n))
	require.NoError(b, err)
	q := models.Query{
		Filter: map[string]any{
			"paid": true,
			"qty":  map[string]any{"gte": 100, "lt": 900},
			"or":   []any{map[string]any{"notes": "paid"}, map[string]any{"price": map[string]any{"gt": 40}}},
		},
		OrderBy:  "-paidAt",
		Page:     2,
		PageSize: 20,
	}
	p, err := st.Query(ctx, s, q)
	require.NoError(b, err)
	require.Len(b, p.Rows, 20)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := st.Query(ctx, s, q); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
	b.ReportMetric(float64(p.TotalCount), "matching-rows")
}

// BenchCRUD measures the single-row calls a request handler makes — Insert, Get, Update and
// Delete of one row each — over a model of preload rows, and reports each as ops/s in a
// sub-benchmark. Per-call overhead (connections, transactions, statement preparation) shows
// here rather than in the bulk benchmarks.
func BenchCRUD(b *testing.B, st models.Store, preload int) {
	ctx := context.Background()
	s, err := models.SchemaOf("models.BenchCRUD_"+randomID(), orderDefinition())
	require.NoError(b, err)
	require.NoError(b, st.Ensure(ctx, s))
	rows := benchRows(b, s, preload)
	stored, err := st.InsertMany(ctx, s, rows)
	require.NoError(b, err)
	ids := make([]int64, len(stored))
	for i, r := range stored {
		ids[i] = r[models.IDField].(int64)
	}
	b.Run("Insert", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := st.Insert(ctx, s, rows[i%len(rows)]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	})
	b.Run("Get", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := st.Get(ctx, s, ids[i%len(ids)]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	})
	b.Run("Update", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, _, err := st.Update(ctx, s, ids[i%len(ids)], models.Row{"qty": int64(i), "title": "updated"}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	})
	b.Run("Delete", func(b *testing.B) {
		if b.N > len(ids) {
			b.Skipf("only %d rows to delete", len(ids))
		}
		for i := 0; i < b.N; i++ {
			if _, err := st.Delete(ctx, s, ids[i]); err != nil {
				b.Fatal(err)
			}
		}
		ids = ids[b.N:]
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	})
}
