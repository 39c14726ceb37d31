package chstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	mrand "math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/logstore"
	"github.com/trellis-run/trellis/logstore/chstore"
)

// BenchmarkInsert: Store.Insert of 50k-row batches of realistic rows into an empty table;
// rows/s is what the writer can at most reach through this store.
func BenchmarkInsert(b *testing.B) {
	dsn := serverDSN(b)
	conn := rawConn(b, dsn)
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	db := "trellis_bench_insert_" + hex.EncodeToString(rnd[:])
	b.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) })
	st, err := chstore.Open(b.Context(), dsn, chstore.Options{Database: db})
	require.NoError(b, err)
	defer st.Close()

	const batch = 50_000
	gen := newRowGen(1, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), 24*time.Hour, 1<<40)
	rows := 0
	var elapsed time.Duration
	for b.Loop() {
		b.StopTimer()
		batchRows := gen.batch(batch)
		b.StartTimer()
		start := time.Now()
		require.NoError(b, st.Insert(b.Context(), batchRows))
		elapsed += time.Since(start)
		rows += len(batchRows)
	}
	b.ReportMetric(float64(rows)/elapsed.Seconds(), "rows/s")
	b.ReportMetric(0, "ns/op")
}

// The query benchmarks share one table of 10M rows in database trellis_bench, built once and
// kept between runs (a table with another row count or schema is rebuilt): 4M nodes over 10
// UTC days (1M rows a day), 200 elements, 1.34M requests.
const (
	benchDB    = "trellis_bench"
	benchRows  = 10_000_000
	benchDays  = 10
	benchNodes = 4_016_065 // 2.49 states per node on average: just over benchRows rows
)

var (
	benchStart = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	benchOnce  sync.Once
	benchErr   error
	// benchNodesMade is how many nodes the 10M rows hold (for picking existing requests).
	benchNodesMade int64
)

// bench10M opens the 10M-row store, building it first if needed.
func bench10M(b *testing.B) *chstore.Store {
	b.Helper()
	dsn := serverDSN(b)
	benchOnce.Do(func() { benchErr = build10M(b, dsn) })
	require.NoError(b, benchErr)
	st, err := chstore.Open(b.Context(), dsn, chstore.Options{Database: benchDB})
	require.NoError(b, err)
	b.Cleanup(func() { _ = st.Close() })
	return st
}

func build10M(b *testing.B, dsn string) error {
	ctx := context.Background()
	conn := rawConn(b, dsn)
	gen := newRowGen(10, benchStart, benchDays*24*time.Hour, benchNodes)
	var have uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = '"+benchDB+"' AND name = 'exec_log'").Scan(&have); err != nil {
		return err
	}
	if have == 1 {
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+benchDB+".exec_log").Scan(&have); err != nil {
			return err
		}
	}
	// Generate exactly benchRows rows (in a goroutine, so generating overlaps inserting) and
	// count the nodes they hold, so the benchmarks know which requests exist even when the
	// table is reused (then nothing is inserted).
	count := func(insert func([]logstore.Row) error) error {
		batches := make(chan []logstore.Row, 2)
		go func() {
			defer close(batches)
			total := 0
			for total < benchRows {
				rows := gen.batch(min(50_000, benchRows-total))
				if len(rows) == 0 {
					return
				}
				rows = rows[:min(len(rows), benchRows-total)]
				total += len(rows)
				batches <- rows
			}
		}()
		var err error
		for rows := range batches {
			if insert != nil && err == nil {
				err = insert(rows)
			}
		}
		benchNodesMade = gen.next
		return err
	}
	if have == benchRows {
		st, err := chstore.Open(ctx, dsn, chstore.Options{Database: benchDB})
		if err == nil {
			_ = st.Close()
			b.Logf("reusing %s.exec_log: %d rows", benchDB, have)
			return count(nil)
		}
		b.Logf("rebuilding %s: %v", benchDB, err)
	}
	b.Logf("building %s.exec_log with %d rows (found %d)…", benchDB, benchRows, have)
	if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+benchDB); err != nil {
		return err
	}
	st, err := chstore.Open(ctx, dsn, chstore.Options{Database: benchDB})
	if err != nil {
		return err
	}
	defer st.Close()
	start := time.Now()
	if err := count(func(rows []logstore.Row) error { return st.Insert(ctx, rows) }); err != nil {
		return err
	}
	b.Logf("built %d rows (%d nodes) in %s", benchRows, benchNodesMade, time.Since(start).Round(time.Second))
	return nil
}

// timed runs op b.N times and reports its p50 and p95 latency.
func timed(b *testing.B, op func(i int) error) {
	b.Helper()
	var lat []time.Duration
	i := 0
	for b.Loop() {
		start := time.Now()
		require.NoError(b, op(i))
		lat = append(lat, time.Since(start))
		i++
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.95), "p95-ms")
}

// warm runs op for each of the benchmark's days (i = 0…benchDays-1) before the timed runs, and
// logs how long that took: the first charts over the days build their rollup.
func warm(b *testing.B, op func(i int) error) {
	b.Helper()
	start := time.Now()
	for i := range benchDays {
		require.NoError(b, op(i))
	}
	b.Logf("warm-up (%d calls, building what the rollup lacked): %s", benchDays, time.Since(start).Round(time.Millisecond))
}

func BenchmarkQuery10M(b *testing.B) {
	st := bench10M(b)
	ctx := b.Context()
	rng := mrand.New(mrand.NewPCG(3, 4))
	day := func() time.Time { return benchStart.AddDate(0, 0, rng.IntN(benchDays)) }

	// getEventLog's first page: one element, one status, a one-day range.
	b.Run("EventLogElementStatusDay", func(b *testing.B) {
		statuses := []string{logstore.StatusSuccess, logstore.StatusFail}
		timed(b, func(i int) error {
			d := day()
			p, err := st.Query(ctx, logstore.Query{FullName: benchNames[rng.IntN(benchElements)], Status: statuses[i%2], Start: d, End: d.AddDate(0, 0, 1)})
			if err == nil && p.TotalCount == 0 {
				b.Fatal("empty page: the benchmark data is not what it should be")
			}
			return err
		})
	})
	// The console's event log page as it opens: the first page of 50, no filter and no time
	// range (every node of the 10 days), then with only a status, every element over one day,
	// and one element over the whole log.
	firstPage := func(b *testing.B, q func() logstore.Query) {
		timed(b, func(i int) error {
			p, err := st.Query(ctx, q())
			if err == nil && (p.TotalCount == 0 || len(p.RowDatas) != 50) {
				b.Fatalf("total %d, %d rows: the benchmark data is not what it should be", p.TotalCount, len(p.RowDatas))
			}
			return err
		})
	}
	b.Run("FirstPageAll", func(b *testing.B) {
		firstPage(b, func() logstore.Query { return logstore.Query{Page: 1, PageSize: 50} })
	})
	b.Run("FirstPageFail", func(b *testing.B) {
		firstPage(b, func() logstore.Query { return logstore.Query{Status: logstore.StatusFail, Page: 1, PageSize: 50} })
	})
	b.Run("FirstPageAllDay", func(b *testing.B) {
		firstPage(b, func() logstore.Query {
			d := day()
			return logstore.Query{Start: d, End: d.AddDate(0, 0, 1), Page: 1, PageSize: 50}
		})
	})
	b.Run("FirstPageElement", func(b *testing.B) {
		firstPage(b, func() logstore.Query {
			return logstore.Query{FullName: benchNames[rng.IntN(benchElements)], Page: 1, PageSize: 50}
		})
	})
	// A deep page: the 1,000th page of 50 of every node (50k nodes in: the window widens).
	b.Run("PageThousandAll", func(b *testing.B) {
		firstPage(b, func() logstore.Query { return logstore.Query{Page: 1000, PageSize: 50} })
	})
	// The same over an hour of every element (the console's "all events" view).
	b.Run("EventLogAllStatusHour", func(b *testing.B) {
		timed(b, func(i int) error {
			h := day().Add(time.Duration(rng.IntN(24)) * time.Hour)
			_, err := st.Query(ctx, logstore.Query{Status: logstore.StatusFail, Start: h, End: h.Add(time.Hour)})
			return err
		})
	})
	b.Run("EventLogAllStatusDay", func(b *testing.B) {
		timed(b, func(i int) error {
			d := day()
			_, err := st.Query(ctx, logstore.Query{Status: logstore.StatusFail, Start: d, End: d.AddDate(0, 0, 1)})
			return err
		})
	})
	b.Run("EventLogKwargsDay", func(b *testing.B) {
		timed(b, func(i int) error {
			d := day()
			_, err := st.Query(ctx, logstore.Query{FullName: benchNames[rng.IntN(benchElements)], Start: d, End: d.AddDate(0, 0, 1), Kwargs: map[string]string{"currency": "CNY", "channel": "web"}})
			return err
		})
	})
	b.Run("ByRequest", func(b *testing.B) {
		timed(b, func(i int) error {
			rows, err := st.ByRequest(ctx, requestID(rng.Int64N(benchNodesMade/nodesPerRequest)))
			if err == nil && len(rows) != nodesPerRequest {
				b.Fatalf("request with %d nodes, want %d", len(rows), nodesPerRequest)
			}
			return err
		})
	})
	b.Run("Attempts", func(b *testing.B) {
		timed(b, func(i int) error {
			rows, err := st.Attempts(ctx, hexID('n', rng.Int64N(benchNodesMade)))
			if err == nil && len(rows) == 0 {
				b.Fatal("no attempts")
			}
			return err
		})
	})
	b.Run("SummaryDay", func(b *testing.B) {
		timed(b, func(i int) error {
			d := day()
			s, err := st.Summary(ctx, logstore.SummaryQuery{Start: d, End: d.AddDate(0, 0, 1)})
			if err == nil && len(s) != benchElements {
				b.Fatalf("%d elements, want %d", len(s), benchElements)
			}
			return err
		})
	})
	// Every element by minute over a day: from the minute rollup, built for a day by the first
	// chart over it (warmed up first, the time it took logged).
	b.Run("TimeSeriesDayByMinute", func(b *testing.B) {
		warm(b, func(i int) error {
			d := benchStart.AddDate(0, 0, i)
			_, err := st.TimeSeries(ctx, logstore.TimeSeriesQuery{Start: d, End: d.AddDate(0, 0, 1), Bucket: time.Minute})
			return err
		})
		timed(b, func(i int) error {
			d := day()
			_, err := st.TimeSeries(ctx, logstore.TimeSeriesQuery{Start: d, End: d.AddDate(0, 0, 1), Bucket: time.Minute})
			return err
		})
	})
	b.Run("TimeSeriesTenDaysByHour", func(b *testing.B) {
		timed(b, func(i int) error {
			_, err := st.TimeSeries(ctx, logstore.TimeSeriesQuery{Start: benchStart, End: benchStart.AddDate(0, 0, benchDays), Bucket: time.Hour})
			return err
		})
	})
	// The ten-day charts: every element's summary, and one element's series by hour. The first
	// call over hours or days without a current rollup builds it (once; see rollup.go): warmed
	// up first, the time it took logged.
	b.Run("SummaryTenDays", func(b *testing.B) {
		warm(b, func(int) error {
			_, err := st.Summary(ctx, logstore.SummaryQuery{Start: benchStart, End: benchStart.AddDate(0, 0, benchDays)})
			return err
		})
		timed(b, func(i int) error {
			s, err := st.Summary(ctx, logstore.SummaryQuery{Start: benchStart, End: benchStart.AddDate(0, 0, benchDays)})
			if err == nil && len(s) != benchElements {
				b.Fatalf("%d elements, want %d", len(s), benchElements)
			}
			return err
		})
	})
	b.Run("TimeSeriesTenDaysByHourElement", func(b *testing.B) {
		timed(b, func(i int) error {
			_, err := st.TimeSeries(ctx, logstore.TimeSeriesQuery{Start: benchStart, End: benchStart.AddDate(0, 0, benchDays), Bucket: time.Hour, FullName: benchNames[rng.IntN(benchElements)]})
			return err
		})
	})
	// The same charts from the log table alone (Options.NoRollup): what they cost before the
	// rollup, measured in the same sitting.
	raw, err := chstore.Open(ctx, serverDSN(b), chstore.Options{Database: benchDB, NoRollup: true})
	require.NoError(b, err)
	defer raw.Close()
	b.Run("RawSummaryTenDays", func(b *testing.B) {
		timed(b, func(i int) error {
			_, err := raw.Summary(ctx, logstore.SummaryQuery{Start: benchStart, End: benchStart.AddDate(0, 0, benchDays)})
			return err
		})
	})
	b.Run("RawTimeSeriesTenDaysByHour", func(b *testing.B) {
		timed(b, func(i int) error {
			_, err := raw.TimeSeries(ctx, logstore.TimeSeriesQuery{Start: benchStart, End: benchStart.AddDate(0, 0, benchDays), Bucket: time.Hour})
			return err
		})
	})
	b.Run("RawTimeSeriesDayByMinute", func(b *testing.B) {
		timed(b, func(i int) error {
			d := day()
			_, err := raw.TimeSeries(ctx, logstore.TimeSeriesQuery{Start: d, End: d.AddDate(0, 0, 1), Bucket: time.Minute})
			return err
		})
	})
	b.Run("RawSummaryDay", func(b *testing.B) {
		timed(b, func(i int) error {
			d := day()
			_, err := raw.Summary(ctx, logstore.SummaryQuery{Start: d, End: d.AddDate(0, 0, 1)})
			return err
		})
	})
}

// BenchmarkStorage10M reports bytes per row on disk after compression, from system.parts, for
// the log table alone and with the keys table.
func BenchmarkStorage10M(b *testing.B) {
	bench10M(b)
	conn := rawConn(b, serverDSN(b))
	var logBytes, logRows, keyBytes, rawBytes uint64
	for b.Loop() {
		require.NoError(b, conn.QueryRow(b.Context(), "SELECT sum(data_compressed_bytes), sum(rows), sum(data_uncompressed_bytes) FROM system.parts WHERE database = '"+benchDB+"' AND table = 'exec_log' AND active").Scan(&logBytes, &logRows, &rawBytes))
		require.NoError(b, conn.QueryRow(b.Context(), "SELECT sum(data_compressed_bytes) FROM system.parts WHERE database = '"+benchDB+"' AND table = 'exec_log_keys' AND active").Scan(&keyBytes))
	}
	b.ReportMetric(float64(logBytes)/float64(logRows), "log-bytes/row")
	b.ReportMetric(float64(logBytes+keyBytes)/float64(logRows), "total-bytes/row")
	b.ReportMetric(float64(rawBytes)/float64(logRows), "uncompressed-bytes/row")
	b.ReportMetric(0, "ns/op")
}
