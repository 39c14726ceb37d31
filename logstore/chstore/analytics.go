package chstore

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/trellis-run/trellis/logstore"
)

// latestNodes is a subquery with one row per node created in the range: nk, fn (its element),
// created (epoch ms), st (the latest status's Enum8 code: 1 waiting, 2 running, 3 success, 4 fail)
// and dur (the latest duration, negative ones as 0).
//
// The latest status and duration come from one argMax over both packed into a UInt64
// (duration << 3 | status code): one aggregate state per node instead of two, which makes the
// per-node GROUP BY, the bulk of every analytics query, about a quarter cheaper.
func (s *Store) latestNodes(fullName string, start, end time.Time) string {
	return s.latestNodesWhere(strings.Join(rangeConds(fullName, start, end), " AND "))
}

// latestNodesWhere is latestNodes over the log rows matching where.
func (s *Store) latestNodesWhere(where string) string {
	return fmt.Sprintf("SELECT nk, fn, created, bitAnd(p, 7) AS st, bitShiftRight(p, 3) AS dur FROM ("+
		"SELECT %[1]s AS nk, any(full_name) AS fn, any(%[5]s) AS created, "+
		"argMax(bitOr(bitShiftLeft(toUInt64(greatest(duration_ms, 0)), 3), toUInt64(toInt8(status))), %[2]s) AS p "+
		"FROM %[3]s WHERE %[4]s GROUP BY nk)",
		nodeKey, versionExpr, s.schema.logTable(), where, createdMSExpr)
}

// finishedCond selects success and fail in latestNodes.
const finishedCond = "st >= 3"

// statusCounts are the aggregate columns every analytics query shares, then the percentiles.
// Percentiles are quantilesExact: exact (the value at index floor(q·n) of the sorted
// durations), deterministic, and the same definition localstore uses; it keeps every duration
// of a group in memory, 8 bytes each, which for one element over a day is megabytes at most.
// quantiles (reservoir sampling) and quantilesTDigest would be cheaper but approximate and,
// for the sampling one, differ between runs.
const statusCounts = "count(), countIf(st = 1), countIf(st = 2), countIf(st = 3), countIf(st = 4)"

func byStatus(w, r, sc, f uint64) map[string]int64 {
	return map[string]int64{
		logstore.StatusWaiting: int64(w),
		logstore.StatusRunning: int64(r),
		logstore.StatusSuccess: int64(sc),
		logstore.StatusFail:    int64(f),
	}
}

func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// Summary is per-element figures by the latest state of nodes created in [Start, End):
// counts by status, failure rate, and p50/p95/p99 of the duration of finished nodes.
func (s *Store) Summary(ctx context.Context, q logstore.SummaryQuery) ([]logstore.ElementSummary, error) {
	if err := s.checkOpen("summary"); err != nil {
		return nil, err
	}
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("chstore: summary: %w", err)
	}
	sql := fmt.Sprintf("SELECT fn, %s, quantilesExactIf(0.5, 0.95, 0.99)(toFloat64(dur), %s) FROM (%s) GROUP BY fn ORDER BY fn",
		statusCounts, finishedCond, s.latestNodes(q.FullName, q.Start, q.End))
	if from, to := hourCeil(q.Start), hourFloor(q.End); s.useRollup(q.FullName, q.Start, q.End) && to > from {
		plan, err := s.planRollup(ctx, from, to, s.hourLevel(), true)
		if err != nil {
			return nil, s.fail(ctx, "summary: rollup", err)
		}
		if !plan.empty() {
			// Whole days and hours from the rollup, the rest (partial hours at the edges, hours
			// still being written) from the log as the same states, merged per element.
			const cols = "full_name AS fn, total AS t, waiting AS w, running AS r, success AS sc, fail AS f, durations AS d"
			var parts []string
			if len(plan.days) > 0 {
				parts = append(parts, s.rollupSource(s.dayLevel(), cols, plan.days, q.FullName, false))
			}
			if len(plan.hours) > 0 {
				parts = append(parts, s.rollupSource(s.hourLevel(), cols, plan.hours, q.FullName, false))
			}
			if raw := rawRanges(plan, [2]time.Time{q.Start, time.Unix(from, 0)}, [2]time.Time{time.Unix(to, 0), q.End}); len(raw) > 0 {
				parts = append(parts, fmt.Sprintf("SELECT fn, count() AS t, countIf(st = 1) AS w, countIf(st = 2) AS r, countIf(st = 3) AS sc, countIf(st = 4) AS f, %s AS d FROM (%s) GROUP BY fn",
					durationState, s.latestNodesWhere(rangesCond(q.FullName, raw))))
			}
			sql = fmt.Sprintf("SELECT fn, sum(t), sum(w), sum(r), sum(sc), sum(f), %s FROM (%s) GROUP BY fn ORDER BY fn",
				durationMerge, strings.Join(parts, " UNION ALL "))
		}
	}
	rows, err := s.conn.Query(ctx, sql)
	if err != nil {
		return nil, s.fail(ctx, "summary", err)
	}
	defer rows.Close()
	out := []logstore.ElementSummary{}
	for rows.Next() {
		var (
			e                  logstore.ElementSummary
			total, w, r, sc, f uint64
			pct                []float64
		)
		if err := rows.Scan(&e.FullName, &total, &w, &r, &sc, &f, &pct); err != nil {
			return nil, s.fail(ctx, "summary", err)
		}
		e.Total = int64(total)
		e.ByStatus = byStatus(w, r, sc, f)
		if sc+f > 0 {
			e.FailureRate = float64(f) / float64(sc+f)
			if len(pct) == 3 {
				e.P50, e.P95, e.P99 = finite(pct[0]), finite(pct[1]), finite(pct[2])
			}
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(ctx, "summary", err)
	}
	return out, nil
}

// TimeSeries counts nodes per bucket of q.Span (aligned to the clock, UTC, as localstore's),
// by latest status. Bucket numbers are intDiv arithmetic on milliseconds from the span's start,
// itself a multiple of the bucket: 18.16 has no toStartOfInterval. Every bucket is returned,
// empty ones with zeros, so a chart needs no gap filling.
func (s *Store) TimeSeries(ctx context.Context, q logstore.TimeSeriesQuery) ([]logstore.Bucket, error) {
	if err := s.checkOpen("timeSeries"); err != nil {
		return nil, err
	}
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("chstore: timeSeries: %w", err)
	}
	first, end, buckets := q.Span()
	startMS, bucketMS, n := first.UnixMilli(), q.Bucket.Milliseconds(), int64(buckets)
	sql := fmt.Sprintf("SELECT intDiv(created - %[1]d, %[2]d) AS bucket, %[3]s, quantileExactIf(0.95)(toFloat64(dur), %[4]s) FROM (%[5]s) GROUP BY bucket ORDER BY bucket",
		startMS, bucketMS, statusCounts, finishedCond, s.latestNodes(q.FullName, first, end))
	// Buckets are aligned to the clock (multiples of the bucket since the epoch), so a bucket of
	// whole days is made of whole UTC days, one of whole hours of hours, one of whole minutes of
	// minutes: each can be summed from the rollup level of its unit (minutes for every element
	// only), the partial hours at the edges and the hours still being written from the log.
	fine, days, rollup := s.hourLevel(), false, true
	switch {
	case bucketMS%(daySec*1000) == 0:
		days = true
	case bucketMS%(hourSec*1000) == 0:
	case bucketMS%(minuteSec*1000) == 0 && q.FullName == "":
		fine = s.minuteLevel()
	default:
		rollup = false
	}
	if from, to := hourCeil(first), hourFloor(end); rollup && s.useRollup(q.FullName, first, end) && to > from {
		plan, err := s.planRollup(ctx, from, to, fine, days)
		if err != nil {
			return nil, s.fail(ctx, "timeSeries: rollup", err)
		}
		if !plan.empty() {
			cols := func(l rollupLevel) string {
				return fmt.Sprintf("intDiv(toInt64(toUInt32(%s)) * 1000 - %d, %d) AS bucket, total AS t, waiting AS w, running AS r, success AS sc, fail AS f, durations AS d", l.col, startMS, bucketMS)
			}
			var parts []string
			if len(plan.days) > 0 {
				parts = append(parts, s.rollupSource(s.dayLevel(), cols(s.dayLevel()), plan.days, q.FullName, true))
			}
			if len(plan.hours) > 0 {
				parts = append(parts, s.rollupSource(fine, cols(fine), plan.hours, q.FullName, true))
			}
			if raw := rawRanges(plan, [2]time.Time{first, time.Unix(from, 0)}, [2]time.Time{time.Unix(to, 0), end}); len(raw) > 0 {
				parts = append(parts, fmt.Sprintf("SELECT intDiv(created - %d, %d) AS bucket, count() AS t, countIf(st = 1) AS w, countIf(st = 2) AS r, countIf(st = 3) AS sc, countIf(st = 4) AS f, %s AS d FROM (%s) GROUP BY bucket",
					startMS, bucketMS, durationState, s.latestNodesWhere(rangesCond(q.FullName, raw))))
			}
			sql = fmt.Sprintf("SELECT bucket, sum(t), sum(w), sum(r), sum(sc), sum(f), %s[2] FROM (%s) GROUP BY bucket ORDER BY bucket",
				durationMerge, strings.Join(parts, " UNION ALL "))
		}
	}
	rows, err := s.conn.Query(ctx, sql)
	if err != nil {
		return nil, s.fail(ctx, "timeSeries", err)
	}
	defer rows.Close()
	out := make([]logstore.Bucket, n)
	for i := range out {
		out[i] = logstore.Bucket{Start: time.UnixMilli(startMS + int64(i)*bucketMS).UTC(), ByStatus: byStatus(0, 0, 0, 0)}
	}
	for rows.Next() {
		var (
			i                  int64
			total, w, r, sc, f uint64
			p95                float64
		)
		if err := rows.Scan(&i, &total, &w, &r, &sc, &f, &p95); err != nil {
			return nil, s.fail(ctx, "timeSeries", err)
		}
		if i < 0 || i >= n {
			continue // cannot happen: the range filter keeps created within the span
		}
		bk := &out[i]
		bk.Total, bk.ByStatus, bk.Failed = int64(total), byStatus(w, r, sc, f), int64(f)
		if sc+f > 0 {
			bk.P95 = finite(p95)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(ctx, "timeSeries", err)
	}
	return out, nil
}
