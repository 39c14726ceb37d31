package localstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/trellis-run/trellis/logstore"
)

// percentile is the exact q-quantile of ascending durations: the value at 0-based index
// floor(q·n), capped at n-1 (ClickHouse's quantileExact); 0 when there are none.
func percentile(sorted []int64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(int(q*float64(len(sorted))), len(sorted)-1)
	return float64(sorted[i])
}

// tally gathers one element's or one bucket's figures.
type tally struct {
	byStatus  [4]int64
	durations []int64
}

func (t *tally) add(status, duration int64) {
	if status >= 0 && status < 4 {
		t.byStatus[status]++
	}
	if status == codeSuccess || status == codeFail {
		t.durations = append(t.durations, duration)
	}
}

func (t *tally) total() int64 { return t.byStatus[0] + t.byStatus[1] + t.byStatus[2] + t.byStatus[3] }

func (t *tally) statusMap() map[string]int64 {
	m := make(map[string]int64, 4)
	for code, n := range t.byStatus {
		if n > 0 {
			m[statusNames[code]] = n
		}
	}
	return m
}

// rangeRows streams (created_at, full_name, status, duration) of the latest state of every node
// created in [start, end), of one element or all, from an index that covers them.
func (s *Store) rangeRows(ctx context.Context, start, end time.Time, fullName string, fn func(created int64, name []byte, status, duration int64)) error {
	if s.closed.Load() {
		return fmt.Errorf("%w: %w", ErrClosed, logstore.ErrUnavailable)
	}
	// Both indexes cover the columns read; the planner, without statistics, would pick
	// nodes_time for one element too and read every element's nodes of the range.
	query := `SELECT created_at, full_name, status, duration FROM nodes INDEXED BY nodes_time
		WHERE created_at >= ? AND created_at < ? AND ` + notLag("full_name")
	args := []any{start.UnixMilli(), end.UnixMilli()}
	if fullName != "" {
		query = `SELECT created_at, full_name, status, duration FROM nodes INDEXED BY nodes_name_time
			WHERE full_name = ? AND created_at >= ? AND created_at < ?`
		args = []any{fullName, start.UnixMilli(), end.UnixMilli()}
	}
	rows, err := s.read.QueryContext(ctx, query, args...)
	if err != nil {
		return readErr(ctx, err)
	}
	defer rows.Close()
	var (
		created, status, duration int64
		name                      sql.RawBytes
	)
	for rows.Next() {
		if err := rows.Scan(&created, &name, &status, &duration); err != nil {
			return readErr(ctx, err)
		}
		fn(created, name, status, duration)
	}
	if err := rows.Err(); err != nil {
		return readErr(ctx, err)
	}
	return nil
}

// Summary is per-element counts by status, failure rate and exact duration percentiles over
// nodes created in the range, by their latest state; elements in fullName order.
func (s *Store) Summary(ctx context.Context, q logstore.SummaryQuery) ([]logstore.ElementSummary, error) {
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	tallies := map[string]*tally{}
	err := s.rangeRows(ctx, q.Start, q.End, q.FullName, func(_ int64, name []byte, status, duration int64) {
		t := tallies[string(name)] // no allocation for the lookup
		if t == nil {
			t = &tally{}
			tallies[string(name)] = t
		}
		t.add(status, duration)
	})
	if err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	out := make([]logstore.ElementSummary, 0, len(tallies))
	for name, t := range tallies {
		slices.Sort(t.durations)
		sum := logstore.ElementSummary{
			FullName: name,
			Total:    t.total(),
			ByStatus: t.statusMap(),
			P50:      percentile(t.durations, 0.50),
			P95:      percentile(t.durations, 0.95),
			P99:      percentile(t.durations, 0.99),
		}
		if done := t.byStatus[codeSuccess] + t.byStatus[codeFail]; done > 0 {
			sum.FailureRate = float64(t.byStatus[codeFail]) / float64(done)
		}
		out = append(out, sum)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].FullName < out[j].FullName })
	return out, nil
}

// TimeSeries counts nodes by status in the buckets of q.Span (aligned to the clock, UTC);
// every bucket of the span is present, empty ones with zero counts.
func (s *Store) TimeSeries(ctx context.Context, q logstore.TimeSeriesQuery) ([]logstore.Bucket, error) {
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("time series: %w", err)
	}
	first, end, n := q.Span()
	tallies := make([]tally, n)
	start, width := first.UnixMilli(), q.Bucket.Milliseconds()
	err := s.rangeRows(ctx, first, end, q.FullName, func(created int64, _ []byte, status, duration int64) {
		tallies[(created-start)/width].add(status, duration)
	})
	if err != nil {
		return nil, fmt.Errorf("time series: %w", err)
	}
	out := make([]logstore.Bucket, n)
	for i := range tallies {
		t := &tallies[i]
		slices.Sort(t.durations)
		out[i] = logstore.Bucket{
			Start:    first.Add(time.Duration(i) * q.Bucket),
			Total:    t.total(),
			ByStatus: t.statusMap(),
			Failed:   t.byStatus[codeFail],
			P95:      percentile(t.durations, 0.95),
		}
	}
	return out, nil
}
