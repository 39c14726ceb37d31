package chstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"slices"
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
//
// The same mechanism has three granularities (rollupLevel), each a table of the same columns:
//
//   - hours (Table_rollup): per (hour, element) and every element summed, built from the log;
//   - days (Table_rollup_days): per (day, element) and every element summed, merged from the 24
//     hourly builds of the day (a cheap merge of states, no log read). A day's count is the sum
//     of its hours' counts, which changes whenever one of them does (counts only grow), so a
//     day build is current exactly while all its hour builds are. A ten-day summary merges 10
//     states per element instead of 240: 30 ms instead of 200–500 ms on the 10M-row benchmark;
//   - minutes (Table_rollup_minutes): every element summed per minute (no per-element rows: a
//     single element's day is a cheap read of the log by the primary key), built from the log
//     an hour at a time like the hours, for minute buckets over every element.
//
// A query reads whole settled days from the days table, the other whole hours from the hours
// (or minutes) table, and the partial hours at the edges and the hours still being written from
// the log, merging the same states per element or bucket.

const (
	minuteSec = 60
	hourSec   = 3600
	daySec    = 24 * hourSec
)

// rollupLevel is one granularity of the rollup: a table of the same columns (rollupColumns after
// its time column), whose rows each cover sec seconds starting at col, and whose builds cover
// whole units of unit seconds (an hour, or a day for the days table): one build of a unit is
// made at one count of the unit's rows (from the hours table) and completed by one marker row
// (empty full_name) at the unit's start.
type rollupLevel struct {
	table string // qualified
	col   string
	sec   int64
	unit  int64
}

// hourLevel is the hourly rollup, built from the log: per (hour, element), plus every element
// summed (allElements).
func (s *Store) hourLevel() rollupLevel {
	return rollupLevel{table: s.schema.rollupTable(), col: "hour", sec: hourSec, unit: hourSec}
}

// dayLevel is the daily rollup, merged from a day's 24 hourly builds: per (day, element), plus
// every element summed.
func (s *Store) dayLevel() rollupLevel {
	return rollupLevel{table: s.schema.daysTable(), col: "day", sec: daySec, unit: daySec}
}

// minuteLevel is every element's figures per minute (allElements rows only), built from the log
// an hour at a time.
func (s *Store) minuteLevel() rollupLevel {
	return rollupLevel{table: s.schema.minutesTable(), col: "minute", sec: minuteSec, unit: hourSec}
}

// unitOf is the start (epoch seconds, UInt32) of the build unit of a row of l.
func (l rollupLevel) unitOf() string {
	if l.sec == l.unit {
		return "toUInt32(" + l.col + ")"
	}
	return fmt.Sprintf("toUInt32(intDiv(toUInt32(%s), %d) * %d)", l.col, l.unit, l.unit)
}

// rollupPlan is how to answer over [from, to) (epoch seconds, whole hours): days[d] is the
// build of the days table to read for day d, hours[h] the build of the finer level (hours or
// minutes) for hour h, and raw the hours (epoch seconds) to read from the log. Every hour of the
// range is in exactly one of them.
type rollupPlan struct {
	days  map[int64]uint64
	hours map[int64]uint64
	raw   []int64
}

func (p rollupPlan) empty() bool { return len(p.days) == 0 && len(p.hours) == 0 }

// hourCount is one hour's row of the hours table.
type hourCount struct {
	rows     uint64
	inserted int64
}

// buildKey finds the build of a unit made at a count of rows.
type buildKey struct {
	unit int64
	rows uint64
}

// planRollup reads the hours counter and the builds over [from, to), builds what is settled but
// has no current build, and says how to read each hour. With days, the whole days of the range
// whose hours are all settled come from the days table (a missing day is merged from its hours'
// builds, themselves built first if missing); every other hour comes from fine (the hour or the
// minute level), or from the log while it is still being written to.
func (s *Store) planRollup(ctx context.Context, from, to int64, fine rollupLevel, days bool) (rollupPlan, error) {
	s.rollupMu.Lock()
	defer s.rollupMu.Unlock()
	plan := rollupPlan{days: map[int64]uint64{}, hours: map[int64]uint64{}}
	var now uint32
	if err := s.conn.QueryRow(ctx, "SELECT toUInt32(now())").Scan(&now); err != nil {
		return plan, err
	}
	counts, err := s.hourCounts(ctx, from, to)
	if err != nil {
		return plan, err
	}
	delay := int64(max(s.schema.opts.RollupDelay, 0) / time.Second)
	settled := func(h int64) bool {
		c := counts[h]
		return c.inserted == 0 || int64(now)-c.inserted >= delay
	}
	// A day's count is the sum of its hours' counts. Counts only grow (rows are only added; a
	// retention drop takes the day's rollups with it), so the sum is unchanged exactly while
	// every hour's count is.
	dayRows := map[int64]uint64{}
	var newDays []int64
	if dFrom, dTo := ceilTo(from, daySec), floorTo(to, daySec); days && dTo > dFrom {
		builds, err := s.builds(ctx, s.dayLevel(), dFrom, dTo)
		if err != nil {
			return plan, err
		}
		for d := dFrom; d < dTo; d += daySec {
			done := true
			var n uint64
			for h := d; h < d+daySec; h += hourSec {
				n += counts[h].rows
				done = done && settled(h)
			}
			dayRows[d] = n
			switch b, ok := builds[buildKey{d, n}]; {
			case !done:
				// Read by the hour: the settled hours from the rollup, the others from the log.
			case ok:
				plan.days[d] = b
			default:
				newDays = append(newDays, d)
			}
		}
	}
	var need, missing []int64
	for h := from; h < to; h += hourSec {
		if _, ok := plan.days[floorTo(h, daySec)]; !ok {
			need = append(need, h)
		}
	}
	if len(need) > 0 {
		builds, err := s.builds(ctx, fine, need[0], need[len(need)-1]+hourSec)
		if err != nil {
			return plan, err
		}
		for _, h := range need {
			switch b, ok := builds[buildKey{h, counts[h].rows}]; {
			case !settled(h):
				plan.raw = append(plan.raw, h)
			case ok:
				plan.hours[h] = b
			default:
				missing = append(missing, h)
			}
		}
	}
	// Build contiguous runs of missing hours, a day at most per statement, then the missing
	// days (whose hours are now all built) from them.
	for _, run := range runs(missing, hourSec, 24) {
		rows := make([]uint64, len(run))
		for i, h := range run {
			rows[i] = counts[h].rows
		}
		var b uint64
		if fine.sec == minuteSec {
			b, err = s.buildMinutes(ctx, run, rows)
		} else {
			b, err = s.buildHours(ctx, run, rows)
		}
		if err != nil {
			return plan, err
		}
		for _, h := range run {
			plan.hours[h] = b
		}
	}
	for _, run := range runs(newDays, daySec, 31) {
		rows := make([]uint64, len(run))
		for i, d := range run {
			rows[i] = dayRows[d]
		}
		b, err := s.buildDays(ctx, run, rows, plan.hours)
		if err != nil {
			return plan, err
		}
		for _, d := range run {
			plan.days[d] = b
			for h := d; h < d+daySec; h += hourSec {
				delete(plan.hours, h)
			}
		}
	}
	return plan, nil
}

// hourCounts reads the hours table over [from, to).
func (s *Store) hourCounts(ctx context.Context, from, to int64) (map[int64]hourCount, error) {
	counts := map[int64]hourCount{}
	rows, err := s.conn.Query(ctx, fmt.Sprintf("SELECT toUInt32(hour) AS h, countMerge(rows), toUInt32(maxMerge(inserted)) FROM %s WHERE hour >= %s AND hour < %s GROUP BY h",
		s.schema.hoursTable(), dateTime(from), dateTime(to)))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			h, ins uint32
			n      uint64
		)
		if err := rows.Scan(&h, &n, &ins); err != nil {
			return nil, err
		}
		counts[int64(h)] = hourCount{rows: n, inserted: int64(ins)}
	}
	return counts, rows.Err()
}

// builds lists the complete builds of l's units in [from, to): the smallest build id per (unit,
// count).
func (s *Store) builds(ctx context.Context, l rollupLevel, from, to int64) (map[buildKey]uint64, error) {
	out := map[buildKey]uint64{}
	rows, err := s.conn.Query(ctx, fmt.Sprintf("SELECT %[1]s AS u, rows, min(build) FROM %[2]s WHERE %[3]s >= %[4]s AND %[3]s < %[5]s AND full_name = '' GROUP BY u, rows",
		l.unitOf(), l.table, l.col, dateTime(from), dateTime(to)))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			u    uint32
			n, b uint64
		)
		if err := rows.Scan(&u, &n, &b); err != nil {
			return nil, err
		}
		out[buildKey{int64(u), n}] = b
	}
	return out, rows.Err()
}

// runs splits sorted unit starts into runs of consecutive units (step apart), at most max long.
func runs(units []int64, step int64, max int) [][]int64 {
	var out [][]int64
	for i := 0; i < len(units); {
		j := i + 1
		for j < len(units) && j-i < max && units[j] == units[j-1]+step {
			j++
		}
		out = append(out, units[i:j])
		i = j
	}
	return out
}

// newBuild is a random nonzero build id.
func newBuild() uint64 {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	return binary.LittleEndian.Uint64(rnd[:])>>1 | 1
}

// rowsOf is the SQL for the count a build records for the unit holding expr (epoch seconds) in
// the run of consecutive units (unit seconds apart), whose counts are rows.
func rowsOf(expr string, run []int64, rows []uint64, unit int64) string {
	ns := make([]string, len(rows))
	for i, n := range rows {
		ns[i] = strconv.FormatUint(n, 10)
	}
	return fmt.Sprintf("toUInt64([%s][toUInt32(intDiv(%s - %d, %d)) + 1])", strings.Join(ns, ", "), expr, run[0], unit)
}

// markBuild completes build id of l over run: one marker row per unit, inserted last.
func (s *Store) markBuild(ctx context.Context, l rollupLevel, id uint64, run []int64, rows []uint64) error {
	return s.conn.Exec(ctx, fmt.Sprintf("INSERT INTO %[1]s (%[2]s, %[3]s) SELECT toDateTime(u), %[4]s, %[5]d, '', 0, 0, 0, 0, 0, "+
		"quantilesExactWeightedState("+durationLevels+")(toUInt32(0), toUInt64(0)) FROM (SELECT toUInt32(%[6]d + number * %[7]d) AS u FROM system.numbers LIMIT %[8]d) GROUP BY u",
		l.table, l.col, rollupColumns, rowsOf("u", run, rows, l.unit), id, run[0], l.unit, len(run)))
}

// buildHours rolls up the contiguous hours run from the log, recording each hour's count from
// rows, and returns the build id.
func (s *Store) buildHours(ctx context.Context, run []int64, rows []uint64) (uint64, error) {
	id, l := newBuild(), s.hourLevel()
	start, end := time.Unix(run[0], 0), time.Unix(run[len(run)-1]+hourSec, 0)
	data := fmt.Sprintf("INSERT INTO %[1]s (hour, %[2]s) SELECT toDateTime(h), %[3]s, %[4]d, fn, count(), countIf(st = 1), countIf(st = 2), countIf(st = 3), countIf(st = 4), "+
		"%[6]s FROM (SELECT toUInt32(intDiv(created, 3600000) * 3600) AS h, fn, st, dur FROM (%[5]s)) GROUP BY h, fn",
		l.table, rollupColumns, rowsOf("h", run, rows, hourSec), id, s.latestNodes("", start, end), durationState)
	if err := s.conn.Exec(ctx, data); err != nil {
		return 0, err
	}
	// Every element's figures in one row per hour (full_name allElements), for charts over every
	// element: merging a few hundred distinct durations per hour instead of every element's.
	all := fmt.Sprintf("INSERT INTO %[1]s (hour, %[2]s) SELECT hour, rows, build, %[3]s, sum(total), sum(waiting), sum(running), sum(success), sum(fail), "+
		"quantilesExactWeightedMergeState(%[4]s)(durations) FROM %[1]s WHERE hour >= %[5]s AND hour < %[6]s AND build = %[7]d AND full_name != '' GROUP BY hour, rows, build",
		l.table, rollupColumns, quoteString(allElements), durationLevels, dateTime(run[0]), dateTime(run[len(run)-1]+hourSec), id)
	if err := s.conn.Exec(ctx, all); err != nil {
		return 0, err
	}
	return id, s.markBuild(ctx, l, id, run, rows)
}

// buildMinutes rolls up every element's figures per minute of the contiguous hours run from the
// log (the same latest-state query as buildHours, grouped by minute), recording each hour's
// count from rows, and returns the build id.
func (s *Store) buildMinutes(ctx context.Context, run []int64, rows []uint64) (uint64, error) {
	id, l := newBuild(), s.minuteLevel()
	start, end := time.Unix(run[0], 0), time.Unix(run[len(run)-1]+hourSec, 0)
	data := fmt.Sprintf("INSERT INTO %[1]s (minute, %[2]s) SELECT toDateTime(m), %[3]s, %[4]d, %[5]s, count(), countIf(st = 1), countIf(st = 2), countIf(st = 3), countIf(st = 4), "+
		"%[7]s FROM (SELECT toUInt32(intDiv(created, 60000) * 60) AS m, st, dur FROM (%[6]s)) GROUP BY m",
		l.table, rollupColumns, rowsOf("m", run, rows, hourSec), id, quoteString(allElements), s.latestNodes("", start, end), durationState)
	if err := s.conn.Exec(ctx, data); err != nil {
		return 0, err
	}
	return id, s.markBuild(ctx, l, id, run, rows)
}

// buildDays merges the hourly builds (hours, which must hold every hour of the run) of the
// contiguous days run into per-day rows, for each element and for every element
// (allElements), recording each day's count from rows, and returns the build id.
func (s *Store) buildDays(ctx context.Context, run []int64, rows []uint64, hours map[int64]uint64) (uint64, error) {
	id, l := newBuild(), s.dayLevel()
	end := run[len(run)-1] + daySec
	pairs := make([]string, 0, (end-run[0])/hourSec)
	for h := run[0]; h < end; h += hourSec {
		b, ok := hours[h]
		if !ok {
			return 0, fmt.Errorf("rollup: hour %d of day %d has no build", h, floorTo(h, daySec))
		}
		pairs = append(pairs, fmt.Sprintf("(%d, %d)", h, b))
	}
	data := fmt.Sprintf("INSERT INTO %[1]s (day, %[2]s) SELECT toDateTime(d), %[3]s, %[4]d, full_name, sum(total), sum(waiting), sum(running), sum(success), sum(fail), "+
		"quantilesExactWeightedMergeState(%[5]s)(durations) FROM (SELECT toUInt32(intDiv(toUInt32(hour), %[6]d) * %[6]d) AS d, full_name, total, waiting, running, success, fail, durations "+
		"FROM %[7]s WHERE hour >= %[8]s AND hour < %[9]s AND (toUInt32(hour), build) IN (%[10]s) AND full_name != '') GROUP BY d, full_name",
		l.table, rollupColumns, rowsOf("d", run, rows, daySec), id, durationLevels, daySec,
		s.schema.rollupTable(), dateTime(run[0]), dateTime(end), strings.Join(pairs, ", "))
	if err := s.conn.Exec(ctx, data); err != nil {
		return 0, err
	}
	return id, s.markBuild(ctx, l, id, run, rows)
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

// rollupSource is the rows of l's builds (unit start → build id), with cols the SELECT list over
// them; fullName "" is each element's rows, or with total the rows summing every element (the
// only rows the minute level has).
func (s *Store) rollupSource(l rollupLevel, cols string, builds map[int64]uint64, fullName string, total bool) string {
	units := make([]int64, 0, len(builds))
	for u := range builds {
		units = append(units, u)
	}
	slices.Sort(units)
	pairs := make([]string, len(units))
	for i, u := range units {
		pairs[i] = fmt.Sprintf("(%d, %d)", u, builds[u])
	}
	cond := "full_name NOT IN ('', " + quoteString(allElements) + ")"
	switch {
	case total && fullName == "":
		cond = "full_name = " + quoteString(allElements)
	case fullName != "":
		cond = "full_name = " + quoteString(fullName)
	}
	return fmt.Sprintf("SELECT %[1]s FROM %[2]s WHERE %[3]s >= %[4]s AND %[3]s < %[5]s AND (%[6]s, build) IN (%[7]s) AND %[8]s",
		cols, l.table, l.col, dateTime(units[0]), dateTime(units[len(units)-1]+l.unit), l.unitOf(), strings.Join(pairs, ", "), cond)
}

// rawRanges are the time ranges to read from the log: the plan's raw hours merged into runs,
// plus extra ranges (the partial hours at the edges of the range).
func rawRanges(plan rollupPlan, extra ...[2]time.Time) [][2]time.Time {
	var out [][2]time.Time
	for _, r := range extra {
		if r[0].Before(r[1]) {
			out = append(out, r)
		}
	}
	for _, run := range runs(plan.raw, hourSec, len(plan.raw)) {
		out = append(out, [2]time.Time{time.Unix(run[0], 0), time.Unix(run[len(run)-1]+hourSec, 0)})
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

// floorTo and ceilTo round epoch seconds sec to a multiple of step.
func floorTo(sec, step int64) int64 { return floorDiv(sec, step) * step }
func ceilTo(sec, step int64) int64  { return -floorDiv(-sec, step) * step }
