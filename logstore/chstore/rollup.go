package chstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/trellis-run/trellis/logstore"
)

// The analytics rollup: Summary and TimeSeries read whole hours (of created_at) from a small
// table of per-(hour, element) figures instead of taking the latest state of every node in the
// log, and only the hours that cannot be read that way from the log itself.
//
// Why not a materialized view straight into an AggregatingMergeTree: the figures count nodes by
// their latest state, and a view sees one insert at a time; a node's waiting, running and final
// rows arrive in different inserts (and a retried node fails, then succeeds), so no per-row
// state can tell, when a success arrives, which earlier status to take the node out of. A
// per-node argMaxState table would be exact but still hold a row per node (4M of the 10M
// rows), and queries would still group by node.
//
// So the rollup is exact by construction instead: it is the same latest-state query over the
// log, run once per hour and stored. What keeps it exact is the hours table, which a
// materialized view fills with the count of rows inserted per hour of created_at (and the time
// of the last insert): a build records the hour's count read *before* it reads the log, and a
// query uses a build only while the count is still the same. Any insert into an hour — a late
// final state, a retry, a replayed spool, a duplicate — changes the count, and the hour is
// rebuilt (or read from the log) on the next query. The view writes the count after the log's
// block (ClickHouse writes a table before its views), so a build can include rows its count
// does not yet know of, which only makes it look stale; never the reverse.
//
// Hours written to within RollupDelay (the current hour, usually) are read from the log, so a
// busy hour is not rebuilt on every query. Builds are made by the query that first needs them
// (the first ten-day chart after an upgrade pays for ten days once); existing tables need no
// backfill: the counter only has to change when an hour changes, not to know its total.
//
// A build is complete when its marker row (full_name '') exists, inserted after its data;
// concurrent builders of one hour at one count read the same rows, and queries take the
// smallest complete build id, so duplicates are harmless. Stale builds stay until retention
// drops their day.

const hourSec = 3600

// rollupPlan is how to answer over [from, to) (epoch seconds, whole hours): builds[h] is the
// build to read for hour h; raw are the hours (epoch seconds) to read from the log.
type rollupPlan struct {
	builds map[int64]uint64
	raw    []int64
}

// hourCount is one hour's row of the hours table.
type hourCount struct {
	rows     uint64
	inserted int64
}

// planHours reads the hours counter and the builds over [from, to), builds the hours that are
// settled but have no current build, and says how to read each hour.
func (s *Store) planHours(ctx context.Context, from, to int64) (rollupPlan, error) {
	s.rollupMu.Lock()
	defer s.rollupMu.Unlock()
	plan := rollupPlan{builds: map[int64]uint64{}}
	var now uint32
	if err := s.conn.QueryRow(ctx, "SELECT toUInt32(now())").Scan(&now); err != nil {
		return plan, err
	}
	counts := map[int64]hourCount{}
	rows, err := s.conn.Query(ctx, fmt.Sprintf("SELECT toUInt32(hour) AS h, countMerge(rows), toUInt32(maxMerge(inserted)) FROM %s WHERE hour >= %s AND hour < %s GROUP BY h",
		s.schema.hoursTable(), dateTime(from), dateTime(to)))
	if err != nil {
		return plan, err
	}
	for rows.Next() {
		var (
			h, ins uint32
			n      uint64
		)
		if err := rows.Scan(&h, &n, &ins); err != nil {
			rows.Close()
			return plan, err
		}
		counts[int64(h)] = hourCount{rows: n, inserted: int64(ins)}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return plan, err
	}
	type key struct {
		hour int64
		rows uint64
	}
	builds := map[key]uint64{}
	rows, err = s.conn.Query(ctx, fmt.Sprintf("SELECT toUInt32(hour) AS h, rows, min(build) FROM %s WHERE hour >= %s AND hour < %s AND full_name = '' GROUP BY h, rows",
		s.schema.rollupTable(), dateTime(from), dateTime(to)))
	if err != nil {
		return plan, err
	}
	for rows.Next() {
		var (
			h    uint32
			n, b uint64
		)
		if err := rows.Scan(&h, &n, &b); err != nil {
			rows.Close()
			return plan, err
		}
		builds[key{int64(h), n}] = b
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return plan, err
	}
	delay := int64(max(s.schema.opts.RollupDelay, 0) / time.Second)
	var missing []int64
	for h := from; h < to; h += hourSec {
		c := counts[h]
		switch b, ok := builds[key{h, c.rows}]; {
		case c.inserted != 0 && int64(now)-c.inserted < delay:
			plan.raw = append(plan.raw, h)
		case ok:
			plan.builds[h] = b
		default:
			missing = append(missing, h)
		}
	}
	// Build contiguous runs of missing hours, a day at most per statement.
	for i := 0; i < len(missing); {
		j := i + 1
		for j < len(missing) && j-i < 24 && missing[j] == missing[j-1]+hourSec {
			j++
		}
		run := missing[i:j]
		b, err := s.build(ctx, run, counts)
		if err != nil {
			return plan, err
		}
		for _, h := range run {
			plan.builds[h] = b
		}
		i = j
	}
	return plan, nil
}

// build rolls up the contiguous hours run, recording each hour's count from counts, and
// returns the build id.
func (s *Store) build(ctx context.Context, run []int64, counts map[int64]hourCount) (uint64, error) {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	id := binary.LittleEndian.Uint64(rnd[:])>>1 | 1 // nonzero
	from := run[0]
	ns := make([]string, len(run))
	for i, h := range run {
		ns[i] = strconv.FormatUint(counts[h].rows, 10)
	}
	// rowsOf is the count of the hour h (epoch seconds, UInt32) within the run.
	rowsOf := fmt.Sprintf("toUInt64([%s][toUInt32(intDiv(h - %d, %d)) + 1])", strings.Join(ns, ", "), from, hourSec)
	start, end := time.Unix(from, 0), time.Unix(run[len(run)-1]+hourSec, 0)
	data := fmt.Sprintf("INSERT INTO %[1]s (%[2]s) SELECT toDateTime(h), %[3]s, %[4]d, fn, count(), countIf(st = 1), countIf(st = 2), countIf(st = 3), countIf(st = 4), "+
		"%[6]s FROM (SELECT toUInt32(intDiv(created, 3600000) * 3600) AS h, fn, st, dur FROM (%[5]s)) GROUP BY h, fn",
		s.schema.rollupTable(), rollupColumns, rowsOf, id, s.latestNodes("", start, end), durationState)
	if err := s.conn.Exec(ctx, data); err != nil {
		return 0, err
	}
	// Every element's figures in one row per hour (full_name allElements), for charts over every
	// element: merging a few hundred distinct durations per hour instead of every element's.
	all := fmt.Sprintf("INSERT INTO %[1]s (%[2]s) SELECT hour, rows, build, %[3]s, sum(total), sum(waiting), sum(running), sum(success), sum(fail), "+
		"quantilesExactWeightedMergeState(%[4]s)(durations) FROM %[1]s WHERE hour >= %[5]s AND hour < %[6]s AND build = %[7]d AND full_name != '' GROUP BY hour, rows, build",
		s.schema.rollupTable(), rollupColumns, quoteString(allElements), durationLevels, dateTime(from), dateTime(run[len(run)-1]+hourSec), id)
	if err := s.conn.Exec(ctx, all); err != nil {
		return 0, err
	}
	marker := fmt.Sprintf("INSERT INTO %[1]s (%[2]s) SELECT toDateTime(h), %[3]s, %[4]d, '', 0, 0, 0, 0, 0, "+
		"quantilesExactWeightedState("+durationLevels+")(toUInt32(0), toUInt64(0)) FROM (SELECT toUInt32(%[5]d + number * %[6]d) AS h FROM system.numbers LIMIT %[7]d) GROUP BY h",
		s.schema.rollupTable(), rollupColumns, rowsOf, id, from, hourSec, len(run))
	if err := s.conn.Exec(ctx, marker); err != nil {
		return 0, err
	}
	return id, nil
}

// useRollup says whether analytics over [start, end) of fullName may read the rollup: it holds
// no lag samples, a range shorter than two hours gains nothing from it, and ranges longer
// than maxRollupSpan read the log as before (planning one takes a statement or three per
// missing day, and years of empty days would be thousands).
func (s *Store) useRollup(fullName string, start, end time.Time) bool {
	span := end.Sub(start)
	return !s.schema.opts.NoRollup && fullName != allElements && !strings.HasPrefix(fullName, logstore.LagPrefix) &&
		span >= 2*time.Hour && span <= maxRollupSpan
}

// maxRollupSpan is the longest range analytics read from the rollup.
const maxRollupSpan = 400 * 24 * time.Hour

// allElements is the full_name of the rollup rows that sum every element of an hour; element
// names are dotted identifiers, never "*".
const allElements = "*"

// rollupSource is the rollup rows of plan for fullName, with cols the SELECT list over them;
// fullName "" is each element's rows, or with total the rows summing every element.
func (s *Store) rollupSource(cols string, plan rollupPlan, fullName string, total bool, from, to int64) string {
	pairs := make([]string, 0, len(plan.builds))
	for h := from; h < to; h += hourSec {
		if b, ok := plan.builds[h]; ok {
			pairs = append(pairs, fmt.Sprintf("(%d, %d)", h, b))
		}
	}
	cond := "full_name NOT IN ('', " + quoteString(allElements) + ")"
	switch {
	case total && fullName == "":
		cond = "full_name = " + quoteString(allElements)
	case fullName != "":
		cond = "full_name = " + quoteString(fullName)
	}
	return fmt.Sprintf("SELECT %s FROM %s WHERE hour >= %s AND hour < %s AND (toUInt32(hour), build) IN (%s) AND %s",
		cols, s.schema.rollupTable(), dateTime(from), dateTime(to), strings.Join(pairs, ", "), cond)
}

// rawRanges are the time ranges to read from the log: the plan's raw hours merged into runs,
// plus extra ranges (the partial hours at the edges of a Summary).
func rawRanges(plan rollupPlan, extra ...[2]time.Time) [][2]time.Time {
	var out [][2]time.Time
	for _, r := range extra {
		if r[0].Before(r[1]) {
			out = append(out, r)
		}
	}
	for i := 0; i < len(plan.raw); {
		j := i + 1
		for j < len(plan.raw) && plan.raw[j] == plan.raw[j-1]+hourSec {
			j++
		}
		out = append(out, [2]time.Time{time.Unix(plan.raw[i], 0), time.Unix(plan.raw[j-1]+hourSec, 0)})
		i = j
	}
	return out
}

// rangesCond is the log-table condition for nodes of fullName created in any of ranges.
func rangesCond(fullName string, ranges [][2]time.Time) string {
	parts := make([]string, len(ranges))
	for i, r := range ranges {
		parts[i] = "(" + strings.Join(rangeConds(fullName, r[0], r[1]), " AND ") + ")"
	}
	return "(" + strings.Join(parts, " OR ") + ")"
}

// durationState is the rollup's duration state over latestNodes rows: finished nodes' durations
// with weight 1, others as a 0 of weight 0, which changes no percentile but keeps the state of
// a group without finished nodes from being empty (18.16's quantilesExactWeighted fails on an
// empty state; such a group's percentiles are not used).
const durationState = "quantilesExactWeightedState(" + durationLevels + ")(if(" + finishedCond + ", toUInt32(least(dur, 4294967295)), toUInt32(0)), toUInt64(" + finishedCond + "))"

// durationMerge is the percentiles [p50, p95, p99] of merged duration states d.
const durationMerge = "arrayMap(x -> toFloat64(x), quantilesExactWeightedMerge(" + durationLevels + ")(d))"

// hourFloor and hourCeil round t to whole hours (epoch seconds), from t.UnixMilli() as
// rangeConds reads a bound.
func hourFloor(t time.Time) int64 { return floorDiv(t.UnixMilli(), hourSec*1000) * hourSec }
func hourCeil(t time.Time) int64  { return -floorDiv(-t.UnixMilli(), hourSec*1000) * hourSec }
