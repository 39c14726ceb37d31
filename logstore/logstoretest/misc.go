package logstoretest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/logstore"
)

// testDropBefore: retention removes whole UTC days before the given day and keeps the rest.
// It uses days of 2001, before any other subtest's, so it cannot remove their rows.
func testDropBefore(t *testing.T, s *suite) {
	e := s.setup(t)
	fn := e.name("events.Retention")
	d := func(day int) time.Time { return time.Date(2001, 3, day, 0, 0, 0, 0, time.UTC) }
	nodes := map[string]time.Time{
		"d1-noon":  d(1).Add(12 * time.Hour),
		"d2-early": d(2).Add(3 * time.Hour),
		"d2-last":  d(3).Add(-time.Millisecond),
		"d3-first": d(3),
		"d4-noon":  d(4).Add(12 * time.Hour),
	}
	for name, created := range nodes {
		e.insert(finished(e.node(fn, e.name("req-"+name), e.name(name), "", created), logstore.StatusSuccess, 4)...)
	}
	present := func() []string {
		var out []string
		for _, name := range []string{"d1-noon", "d2-early", "d2-last", "d3-first", "d4-noon"} {
			rows := e.byRequest(e.name("req-" + name))
			attempts := e.attempts(e.name(name))
			require.Equal(t, len(rows) == 0, len(attempts) == 0, "%s: ByRequest and Attempts disagree", name)
			if len(rows) > 0 {
				require.Len(t, rows, 1)
				require.Len(t, attempts, 3)
				out = append(out, name)
			}
		}
		p := e.query(logstore.Query{FullName: fn})
		require.EqualValues(t, len(out), p.TotalCount)
		return out
	}
	require.Equal(t, []string{"d1-noon", "d2-early", "d2-last", "d3-first", "d4-noon"}, present())

	// A time within a day means that day: only the days before it go, the whole day stays.
	require.NoError(t, e.st.DropBefore(e.ctx, d(2).Add(6*time.Hour)))
	require.Equal(t, []string{"d2-early", "d2-last", "d3-first", "d4-noon"}, present())

	require.NoError(t, e.st.DropBefore(e.ctx, d(3)))
	require.Equal(t, []string{"d3-first", "d4-noon"}, present())

	// Dropping again, or days with no rows, is no error.
	require.NoError(t, e.st.DropBefore(e.ctx, d(3)))
	require.NoError(t, e.st.DropBefore(e.ctx, time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)))
	require.Equal(t, []string{"d3-first", "d4-noon"}, present())

	sum, err := e.st.Summary(e.ctx, logstore.SummaryQuery{Start: d(1), End: d(5), FullName: fn})
	require.NoError(t, err)
	require.Len(t, sum, 1)
	require.EqualValues(t, 2, sum[0].Total)
}

// testBadQueries: every bad argument fails with ErrInvalidQuery and a message naming it, never
// an empty answer.
func testBadQueries(t *testing.T, s *suite) {
	e := s.setup(t)
	day := e.days(1)
	e.insert(finished(e.node(e.name("events.Bad"), e.name("req"), e.name("n"), "", day.Add(time.Hour)), logstore.StatusSuccess, 1)...)
	fn := e.name("events.Bad")
	for _, tc := range []struct {
		name, field string
		q           logstore.Query
	}{
		{"unknown status", "status", logstore.Query{FullName: fn, Status: "done"}},
		{"status in capitals", "status", logstore.Query{FullName: fn, Status: "SUCCESS"}},
		{"inverted times", "startTime", logstore.Query{FullName: fn, Start: day.Add(2 * time.Hour), End: day}},
		{"empty range", "startTime", logstore.Query{FullName: fn, Start: day, End: day}},
		{"negative page", "page", logstore.Query{FullName: fn, Page: -1}},
		{"pageSize too big", "pageSize", logstore.Query{FullName: fn, PageSize: logstore.MaxPageSize + 1}},
		{"negative pageSize", "pageSize", logstore.Query{FullName: fn, PageSize: -5}},
		{"kwargs key", "kwargs", logstore.Query{FullName: fn, Kwargs: map[string]string{"a'b": "1"}}},
		{"empty kwargs key", "kwargs", logstore.Query{FullName: fn, Kwargs: map[string]string{"": "1"}}},
		{"unknown stage", "stage", logstore.Query{FullName: fn, Stage: "dead"}},
		{"text too long", "text", logstore.Query{FullName: fn, Text: strings.Repeat("x", logstore.MaxTextFilter+1)}},
		{"text not UTF-8", "text", logstore.Query{FullName: fn, Text: "\xff\xfe"}},
	} {
		p, err := e.st.Query(e.ctx, tc.q)
		require.ErrorIs(t, err, logstore.ErrInvalidQuery, tc.name)
		require.ErrorContains(t, err, tc.field, tc.name)
		require.Empty(t, p.RowDatas, tc.name)
	}
	for _, tc := range []struct {
		name, field string
		q           logstore.SummaryQuery
	}{
		{"no start", "start", logstore.SummaryQuery{End: day}},
		{"no end", "end", logstore.SummaryQuery{Start: day}},
		{"inverted", "start", logstore.SummaryQuery{Start: day.Add(time.Hour), End: day}},
		{"empty", "start", logstore.SummaryQuery{Start: day, End: day}},
	} {
		_, err := e.st.Summary(e.ctx, tc.q)
		require.ErrorIs(t, err, logstore.ErrInvalidQuery, "Summary "+tc.name)
		require.ErrorContains(t, err, tc.field, "Summary "+tc.name)
	}
	for _, tc := range []struct {
		name, field string
		q           logstore.TimeSeriesQuery
	}{
		{"bucket 30s", "bucket", logstore.TimeSeriesQuery{Start: day, End: day.Add(time.Hour), Bucket: 30 * time.Second}},
		{"bucket 90s", "bucket", logstore.TimeSeriesQuery{Start: day, End: day.Add(time.Hour), Bucket: 90 * time.Second}},
		{"bucket 0", "bucket", logstore.TimeSeriesQuery{Start: day, End: day.Add(time.Hour)}},
		{"bucket 25h", "bucket", logstore.TimeSeriesQuery{Start: day, End: day.AddDate(0, 0, 3), Bucket: 25 * time.Hour}},
		{"too many buckets", "bucket", logstore.TimeSeriesQuery{Start: day, End: day.AddDate(0, 0, 8), Bucket: time.Minute}},
		{"inverted", "start", logstore.TimeSeriesQuery{Start: day.Add(time.Hour), End: day, Bucket: time.Minute}},
		{"no start", "start", logstore.TimeSeriesQuery{End: day, Bucket: time.Minute}},
	} {
		_, err := e.st.TimeSeries(e.ctx, tc.q)
		require.ErrorIs(t, err, logstore.ErrInvalidQuery, "TimeSeries "+tc.name)
		require.ErrorContains(t, err, tc.field, "TimeSeries "+tc.name)
	}
	// The limits themselves are allowed.
	_, err := e.st.Query(e.ctx, logstore.Query{FullName: fn, PageSize: logstore.MaxPageSize})
	require.NoError(t, err)
	_, err = e.st.TimeSeries(e.ctx, logstore.TimeSeriesQuery{Start: day, End: day.Add(logstore.MaxBuckets * time.Minute), Bucket: time.Minute, FullName: fn})
	require.NoError(t, err)
	_, err = e.st.TimeSeries(e.ctx, logstore.TimeSeriesQuery{Start: day, End: day.AddDate(0, 0, 2), Bucket: logstore.MaxBucket, FullName: fn})
	require.NoError(t, err)
}

// testConcurrent: inserts and queries from many goroutines at once (run it with -race); every
// row arrives once.
func testConcurrent(t *testing.T, s *suite) {
	e := s.setup(t)
	day := e.days(1)
	fn := e.name("events.Concurrent")
	const writers, batches, nodesPerBatch = 4, 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*batches*4)
	done := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				var rows []logstore.Row
				for i := range nodesPerBatch {
					k := (w*batches+b)*nodesPerBatch + i
					n := e.node(fn, e.name(fmt.Sprintf("req-%d", w)), e.name(fmt.Sprintf("n%d", k)), "", day.Add(time.Duration(k)*time.Second))
					rows = append(rows, finished(n, logstore.StatusSuccess, int64(k%100))...)
				}
				if err := e.st.Insert(e.ctx, rows); err != nil {
					errs <- fmt.Errorf("writer %d batch %d: %w", w, b, err)
					return
				}
				// Every writer sends its second batch twice, as a retrying writer would.
				if b == 1 {
					if err := e.st.Insert(e.ctx, rows); err != nil {
						errs <- fmt.Errorf("writer %d batch %d again: %w", w, b, err)
						return
					}
				}
			}
		}()
	}
	var readers sync.WaitGroup
	for r := range 3 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			// A bounded number of queries, most of them while the writers write.
			for range 25 {
				select {
				case <-done:
					return
				default:
				}
				var err error
				switch r {
				case 0:
					_, err = e.st.Query(e.ctx, logstore.Query{FullName: fn, Status: logstore.StatusSuccess, PageSize: 50})
				case 1:
					_, err = e.st.ByRequest(e.ctx, e.name("req-1"))
				default:
					_, err = e.st.Summary(e.ctx, logstore.SummaryQuery{Start: day, End: day.AddDate(0, 0, 1), FullName: fn})
				}
				if err != nil {
					errs <- fmt.Errorf("reader %d: %w", r, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	readers.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	require.NoError(t, errors.Join(all...))

	const nodes = writers * batches * nodesPerBatch
	p := e.query(logstore.Query{FullName: fn, Status: logstore.StatusSuccess, PageSize: logstore.MaxPageSize})
	require.EqualValues(t, nodes, p.TotalCount)
	require.Len(t, p.RowDatas, nodes)
	for w := range writers {
		require.Len(t, e.byRequest(e.name(fmt.Sprintf("req-%d", w))), batches*nodesPerBatch)
	}
}

// testCloseTwice: Close is safe to call twice.
func testCloseTwice(t *testing.T, s *suite) {
	st := s.newStore(t)
	require.NoError(t, st.Close())
	require.NoError(t, st.Close())
}

// testLagSamplesApart: lag samples (KindLag, FullName "lag:<listener>") are in the log but not
// executions — queries and analytics over every element leave them out; a query naming them
// finds them.
func testLagSamplesApart(t *testing.T, s *suite) {
	e := s.setup(t)
	day := e.days(1)
	listener := e.name("events.lagged")
	run := finished(e.node(listener, e.name("req"), e.name("n1"), "", day.Add(time.Hour)), logstore.StatusSuccess, 5)
	sample := e.node(logstore.LagPrefix+listener, "lag", e.name("lag-1"), "", day.Add(2*time.Hour))
	sample.ID, sample.Kind, sample.Status, sample.Stage = e.name("lag-1#0"), logstore.KindLag, logstore.StatusSuccess, "lag"
	sample.Result = json.RawMessage(`{"pending":3,"undelivered":7}`)
	e.insert(append(run, sample)...)

	all := e.query(logstore.Query{Start: day, End: day.AddDate(0, 0, 1)})
	require.Equal(t, []string{e.name("n1")}, nodeIDs(all.RowDatas), "a query over every element shows executions only")
	lag := e.query(logstore.Query{FullName: logstore.LagPrefix + listener})
	require.Len(t, lag.RowDatas, 1)
	require.Equal(t, logstore.KindLag, lag.RowDatas[0].Kind)
	requireJSON(t, sample.Result, lag.RowDatas[0].Result, "the sample's figures")

	sum, err := e.st.Summary(e.ctx, logstore.SummaryQuery{Start: day, End: day.AddDate(0, 0, 1)})
	require.NoError(t, err)
	require.Len(t, sum, 1)
	require.Equal(t, listener, sum[0].FullName)
	series, err := e.st.TimeSeries(e.ctx, logstore.TimeSeriesQuery{Start: day, End: day.AddDate(0, 0, 1), Bucket: 24 * time.Hour})
	require.NoError(t, err)
	require.Len(t, series, 1)
	require.EqualValues(t, 1, series[0].Total)
}
