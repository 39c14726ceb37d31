//go:build unix

package writer

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/logstore"
	"github.com/trellis-run/trellis/logstore/chstore"
	"github.com/trellis-run/trellis/logstore/localstore"
)

// BenchmarkIngest measures sustained ingest end to end: b.N rows shaped like real ones (kwargs
// of ~300 bytes) written by concurrent callers, each Write acknowledged (fsynced), then
// Flush: every row inserted. rows/s is b.N over that whole time. Shapes:
//
//	rows=1:   256 callers writing one row per Write (the engine recording one state at a time)
//	rows=100: 8 callers writing 100 rows per Write
//
// Backends: discard (the writer alone, a store that drops rows), localstore (embedded), and
// clickhouse (TRELLIS_TEST_CLICKHOUSE, a fresh database). Defaults apply otherwise
// (BatchRows 50,000, FlushInterval 1 s), and ClickHouse is also run with BatchRows 100,000. Run with -benchtime=1000000x or more for a figure
// that covers many batches.
func BenchmarkIngest(b *testing.B) {
	backends := []struct {
		name string
		open func(b *testing.B) logstore.Store
	}{
		{"discard", func(*testing.B) logstore.Store { return &discardStore{} }},
		{"localstore", func(b *testing.B) logstore.Store {
			st, err := localstore.Open(b.TempDir(), localstore.Options{})
			require.NoError(b, err)
			b.Cleanup(func() { _ = st.Close() })
			return st
		}},
		{"clickhouse", func(b *testing.B) logstore.Store {
			dsn, conn := clickHouse(b)
			db := randomName(b, "trellis_bench_writer_")
			b.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) })
			st, err := chstore.Open(context.Background(), dsn, chstore.Options{Database: db})
			require.NoError(b, err)
			b.Cleanup(func() { _ = st.Close() })
			return st
		}},
	}
	for _, be := range backends {
		for _, shape := range []struct{ callers, rows int }{{256, 1}, {8, 100}} {
			b.Run(fmt.Sprintf("%s/rows=%d", be.name, shape.rows), func(b *testing.B) {
				benchIngest(b, be.open(b), shape.callers, shape.rows, 0)
			})
		}
	}
	// At 100k rows/s, one insert per second is 100k rows: ClickHouse takes them faster in
	// batches that size than in the default 50k.
	for _, shape := range []struct{ callers, rows int }{{256, 1}, {8, 100}} {
		b.Run(fmt.Sprintf("clickhouse/rows=%d/batch=100000", shape.rows), func(b *testing.B) {
			benchIngest(b, backends[2].open(b), shape.callers, shape.rows, 100_000)
		})
	}
}

func benchIngest(b *testing.B, store logstore.Store, callers, perWrite, batchRows int) {
	timed := &timedStore{Store: store}
	w, err := New(timed, Options{SpoolDir: b.TempDir(), Logger: slogTo(io.Discard), BatchRows: batchRows})
	require.NoError(b, err)
	ctx := context.Background()
	require.NoError(b, w.Start(ctx))
	defer func() { require.NoError(b, w.Stop(ctx)) }()
	templates := testRows(0, 1000)
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			rows := make([]logstore.Row, perWrite)
			for {
				from := int(next.Add(int64(perWrite))) - perWrite
				if from >= b.N {
					return
				}
				n := min(perWrite, b.N-from)
				for i := range n {
					rows[i] = benchRow(templates, run, from+i)
				}
				if err := w.Write(ctx, rows[:n]...); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	require.NoError(b, w.Flush(ctx))
	elapsed := time.Since(start)
	b.StopTimer()
	st := w.Stats()
	require.Equal(b, int64(b.N), st.Inserted)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rows/s")
	b.ReportMetric(float64(st.SyncedRows)/float64(max(st.Syncs, 1)), "rows/fsync")
	b.ReportMetric(float64(st.Inserted)/float64(max(st.Batches, 1)), "rows/insert")
	// The store's own pace, inside Insert: when it is close to rows/s, the store is the limit.
	b.ReportMetric(float64(st.Inserted)/time.Duration(timed.busy.Load()).Seconds(), "store-rows/s")
}

// timedStore adds up the time spent inside Insert.
type timedStore struct {
	logstore.Store
	busy atomic.Int64
}

func (t *timedStore) Insert(ctx context.Context, rows []logstore.Row) error {
	start := time.Now()
	defer func() { t.busy.Add(int64(time.Since(start))) }()
	return t.Store.Insert(ctx, rows)
}

// benchRow is row i of a run: a template with IDs of its own, three states per node and ten
// nodes per request, created over the last day.
func benchRow(templates []logstore.Row, run string, i int) logstore.Row {
	r := templates[i%len(templates)]
	r.ID = run + "-" + strconv.Itoa(i)
	r.NodeID = run + "-n" + strconv.Itoa(i/3)
	r.ParentNodeID = ""
	r.RequestID = run + "-r" + strconv.Itoa(i/30)
	r.Seq = uint32(i % 3)
	r.CreatedAt = base.Add(time.Duration(i/3) * time.Millisecond)
	r.RecordedAt = r.CreatedAt.Add(time.Duration(i%3) * 10 * time.Millisecond)
	return r
}

// discardStore takes every batch and keeps nothing: the writer's own cost.
type discardStore struct{ memStore }

func (*discardStore) Insert(context.Context, []logstore.Row) error { return nil }
