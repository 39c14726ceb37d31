package logstoretest

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/logstore"
)

// fact is what the analytics of one node depend on: its latest state.
type fact struct {
	fullName string
	created  time.Time
	status   string
	duration int64
}

// analyticsData inserts nodes of three elements over day (a day reserved with a free day on
// either side) and returns their facts. Element "mixed" has every status, nodes that failed
// before succeeding, and running nodes with huge durations that must not count; "fast" only
// successes; "busy" only running and waiting nodes.
func analyticsData(e *env, day time.Time) []fact {
	rng := rand.New(rand.NewPCG(7, 11))
	var facts []fact
	var rows []logstore.Row
	add := func(fn string, i int, created time.Time, status string, duration int64) {
		n := e.node(fn, e.name(fmt.Sprintf("req-%s", fn[len(fn)-4:])), e.name(fmt.Sprintf("%s-%d", fn, i)), "", created)
		var rs []logstore.Row
		switch status {
		case logstore.StatusSuccess, logstore.StatusFail:
			rs = finished(n, status, duration)
			if i%7 == 0 {
				// An earlier failed state with another duration: only the latest counts.
				rs[1].Status = logstore.StatusFail
				rs[1].Duration = 900000
			}
		case logstore.StatusRunning:
			rs = []logstore.Row{state(n, 0, logstore.StatusWaiting, 0), state(n, 1, logstore.StatusRunning, time.Millisecond)}
			rs[1].Duration = 990000 + int64(i)
			duration = rs[1].Duration
		default:
			rs = []logstore.Row{state(n, 0, logstore.StatusWaiting, 0)}
		}
		rows = append(rows, rs...)
		facts = append(facts, fact{fullName: fn, created: created, status: status, duration: duration})
	}
	mixed, fast, busy := e.name("events.mixed"), e.name("events.fast"), e.name("events.busy")
	for i := range 160 {
		// Spread over the day, with clusters in a few minutes (for minute buckets) and
		// nodes exactly on bucket boundaries.
		var created time.Time
		switch {
		case i < 40:
			created = day.Add(10*time.Hour + time.Duration(rng.IntN(10*60*1000))*time.Millisecond)
		case i < 44:
			created = day.Add(10*time.Hour + time.Duration(i-40)*time.Minute) // on minute boundaries
		case i < 48:
			created = day.Add(time.Duration(i-43)*time.Hour - time.Millisecond) // last ms of an hour
		default:
			created = day.Add(time.Duration(rng.IntN(24*3600*1000)) * time.Millisecond)
		}
		status := logstore.StatusSuccess
		switch {
		case i%10 == 3:
			status = logstore.StatusFail
		case i%17 == 5:
			status = logstore.StatusRunning
		case i%23 == 9:
			status = logstore.StatusWaiting
		}
		add(mixed, i, created, status, int64(1+rng.IntN(5000)))
	}
	for i := range 37 {
		add(fast, i, day.Add(time.Duration(rng.IntN(24*3600*1000))*time.Millisecond), logstore.StatusSuccess, int64(rng.IntN(50)))
	}
	for i := range 5 {
		st := logstore.StatusRunning
		if i%2 == 0 {
			st = logstore.StatusWaiting
		}
		add(busy, i, day.Add(time.Duration(i)*time.Hour+time.Minute), st, 0)
	}
	// The next day: for day buckets.
	for i := range 9 {
		add(fast, 100+i, day.AddDate(0, 0, 1).Add(time.Duration(i)*time.Hour), logstore.StatusFail, int64(100+i))
	}
	// Shuffle, insert in a few batches.
	rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	for len(rows) > 0 {
		n := min(len(rows), 150)
		e.insert(rows[:n]...)
		rows = rows[n:]
	}
	return facts
}

type expected struct {
	total     int64
	byStatus  map[string]int64
	durations []int64
}

func (x *expected) add(f fact) {
	if x.byStatus == nil {
		x.byStatus = map[string]int64{}
	}
	x.total++
	x.byStatus[f.status]++
	if f.status == logstore.StatusSuccess || f.status == logstore.StatusFail {
		x.durations = append(x.durations, f.duration)
	}
}

func inRange(f fact, start, end time.Time, fullName string) bool {
	return !f.created.Before(start) && f.created.Before(end) && (fullName == "" || f.fullName == fullName)
}

// testSummary: counts by status, failure rate and percentiles per element, by latest state, over
// several ranges, with and without the fullName filter.
func testSummary(t *testing.T, s *suite) {
	e := s.setup(t)
	day := e.days(4).AddDate(0, 0, 1)
	facts := analyticsData(e, day)
	ranges := []struct{ start, end time.Time }{
		{day, day.AddDate(0, 0, 1)},
		{day.Add(6 * time.Hour), day.Add(12 * time.Hour)},
		{day.Add(10 * time.Hour), day.Add(10*time.Hour + 5*time.Minute)},
		{day.AddDate(0, 0, -1), day.AddDate(0, 0, 3)},
		{day.Add(time.Hour - time.Millisecond), day.Add(2*time.Hour - time.Millisecond)},
	}
	for _, r := range ranges {
		for _, fn := range []string{"", e.name("events.mixed"), e.name("events.busy")} {
			msg := fmt.Sprintf("Summary [%s, %s) %q", r.start.Format(time.RFC3339Nano), r.end.Format(time.RFC3339Nano), fn)
			want := map[string]*expected{}
			for _, f := range facts {
				if inRange(f, r.start, r.end, fn) {
					if want[f.fullName] == nil {
						want[f.fullName] = &expected{}
					}
					want[f.fullName].add(f)
				}
			}
			got, err := e.st.Summary(e.ctx, logstore.SummaryQuery{Start: r.start, End: r.end, FullName: fn})
			require.NoError(t, err, msg)
			require.Len(t, got, len(want), msg)
			for _, g := range got {
				w := want[g.FullName]
				require.NotNil(t, w, "%s: unexpected element %s", msg, g.FullName)
				m := msg + " " + g.FullName
				require.Equal(t, w.total, g.Total, m)
				for _, st := range []string{logstore.StatusWaiting, logstore.StatusRunning, logstore.StatusSuccess, logstore.StatusFail} {
					require.Equal(t, w.byStatus[st], g.ByStatus[st], "%s: %s", m, st)
				}
				rate := 0.0
				if done := w.byStatus[logstore.StatusSuccess] + w.byStatus[logstore.StatusFail]; done > 0 {
					rate = float64(w.byStatus[logstore.StatusFail]) / float64(done)
				}
				require.InDelta(t, rate, g.FailureRate, 1e-9, m+": failureRate")
				s.requirePercentile(t, w.durations, 0.50, g.P50, m)
				s.requirePercentile(t, w.durations, 0.95, g.P95, m)
				s.requirePercentile(t, w.durations, 0.99, g.P99, m)
			}
		}
	}
	got, err := e.st.Summary(e.ctx, logstore.SummaryQuery{Start: day, End: day.AddDate(0, 0, 1), FullName: e.name("events.nobody")})
	require.NoError(t, err)
	require.Empty(t, got)
}

// testTimeSeries: buckets of 1m, 15m, 1h and 1d; every bucket of the range present (empty ones
// with zero counts), each counting nodes created in [Start, Start+Bucket).
func testTimeSeries(t *testing.T, s *suite) {
	e := s.setup(t)
	day := e.days(4).AddDate(0, 0, 1)
	facts := analyticsData(e, day)
	for _, tc := range []struct {
		start, end time.Time
		bucket     time.Duration
	}{
		{day.Add(10 * time.Hour), day.Add(10*time.Hour + 10*time.Minute), time.Minute},
		{day.Add(9*time.Hour + 58*time.Minute), day.Add(10*time.Hour + 13*time.Minute), time.Minute},
		{day.Add(10 * time.Hour), day.Add(11 * time.Hour), 15 * time.Minute},
		{day, day.AddDate(0, 0, 1), time.Hour},
		{day.Add(-2 * time.Hour), day.Add(5 * time.Hour), time.Hour},
		{day.AddDate(0, 0, -1), day.AddDate(0, 0, 3), 24 * time.Hour},
	} {
		for _, fn := range []string{"", e.name("events.mixed"), e.name("events.fast")} {
			msg := fmt.Sprintf("TimeSeries [%s, %s) by %s %q", tc.start.Format(time.RFC3339), tc.end.Format(time.RFC3339), tc.bucket, fn)
			n := int(tc.end.Sub(tc.start) / tc.bucket)
			want := make([]expected, n)
			for _, f := range facts {
				if inRange(f, tc.start, tc.end, fn) {
					want[int(f.created.Sub(tc.start)/tc.bucket)].add(f)
				}
			}
			got, err := e.st.TimeSeries(e.ctx, logstore.TimeSeriesQuery{Start: tc.start, End: tc.end, Bucket: tc.bucket, FullName: fn})
			require.NoError(t, err, msg)
			require.Len(t, got, n, msg)
			for i, g := range got {
				w := want[i]
				m := fmt.Sprintf("%s bucket %d", msg, i)
				requireTime(t, tc.start.Add(time.Duration(i)*tc.bucket), g.Start, m+": start")
				require.Equal(t, w.total, g.Total, m)
				for _, st := range []string{logstore.StatusWaiting, logstore.StatusRunning, logstore.StatusSuccess, logstore.StatusFail} {
					require.Equal(t, w.byStatus[st], g.ByStatus[st], "%s: %s", m, st)
				}
				require.Equal(t, w.byStatus[logstore.StatusFail], g.Failed, m+": failed")
				s.requirePercentile(t, w.durations, 0.95, g.P95, m)
			}
		}
	}
}

// testTimeSeriesAligned: buckets start on the clock (multiples of the bucket since the Unix
// epoch, UTC; a day bucket at midnight UTC), whatever Start is and whatever its location: the
// first bucket is the one holding Start, the last the one holding End's last millisecond, and
// each counts the nodes of its whole width.
func testTimeSeriesAligned(t *testing.T, s *suite) {
	e := s.setup(t)
	day := e.days(3).AddDate(0, 0, 1)
	fn := e.name("events.aligned")
	var rows []logstore.Row
	for i, at := range []time.Duration{
		-time.Millisecond, // the day before
		10 * time.Minute,  // before Start, in Start's hour
		57 * time.Minute,  // after Start
		90 * time.Minute,  // the second hour
		2 * time.Hour,     // on a boundary
		3*time.Hour + 12*time.Minute + 6999*time.Millisecond, // the last millisecond before End
		4*time.Hour - time.Millisecond,                       // after End, in End's hour
		4 * time.Hour,                                        // the hour after End's
		10*time.Hour + 30*time.Second,                        // the minute cases
		10*time.Hour + 3*time.Minute - time.Millisecond,
		10*time.Hour + 3*time.Minute,
		24*time.Hour + 30*time.Minute, // the next day
	} {
		n := e.node(fn, e.name("req"), e.name(fmt.Sprintf("n%d", i)), "", day.Add(at))
		rows = append(rows, finished(n, logstore.StatusSuccess, int64(10+i))...)
	}
	e.insert(rows...)
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	type point struct {
		start time.Duration // from day
		total int64
	}
	for _, tc := range []struct {
		name       string
		start, end time.Time
		bucket     time.Duration
		want       []point
	}{
		{"hours from an odd second", day.Add(56*time.Minute + 53*time.Second), day.Add(3*time.Hour + 12*time.Minute + 7*time.Second), time.Hour,
			[]point{{0, 2}, {time.Hour, 1}, {2 * time.Hour, 1}, {3 * time.Hour, 2}}},
		{"the same range given in another timezone", day.Add(56*time.Minute + 53*time.Second).In(shanghai), day.Add(3*time.Hour + 12*time.Minute + 7*time.Second).In(shanghai), time.Hour,
			[]point{{0, 2}, {time.Hour, 1}, {2 * time.Hour, 1}, {3 * time.Hour, 2}}},
		{"minutes, End on a boundary", day.Add(10*time.Hour + 30*time.Second), day.Add(10*time.Hour + 3*time.Minute), time.Minute,
			[]point{{10 * time.Hour, 1}, {10*time.Hour + time.Minute, 0}, {10*time.Hour + 2*time.Minute, 1}}},
		{"quarters", day.Add(time.Hour + 59*time.Minute), day.Add(2 * time.Hour), 15 * time.Minute,
			[]point{{time.Hour + 45*time.Minute, 0}}},
		{"End a fraction of a millisecond past a boundary", day.Add(time.Hour), day.Add(2*time.Hour + 500*time.Microsecond), time.Hour,
			[]point{{time.Hour, 1}, {2 * time.Hour, 1}}},
		{"days start at midnight UTC", day.Add(13 * time.Hour).In(shanghai), day.Add(25 * time.Hour).In(shanghai), 24 * time.Hour,
			[]point{{0, 10}, {24 * time.Hour, 1}}},
	} {
		got, err := e.st.TimeSeries(e.ctx, logstore.TimeSeriesQuery{Start: tc.start, End: tc.end, Bucket: tc.bucket, FullName: fn})
		require.NoError(t, err, tc.name)
		require.Len(t, got, len(tc.want), tc.name)
		for i, w := range tc.want {
			m := fmt.Sprintf("%s: bucket %d", tc.name, i)
			requireTime(t, day.Add(w.start), got[i].Start, m+": start")
			require.Equal(t, time.UTC, got[i].Start.Location(), m+": start in UTC")
			require.Equal(t, w.total, got[i].Total, m)
			require.Equal(t, w.total, got[i].ByStatus[logstore.StatusSuccess], m)
		}
	}
	// The bucket limit counts the aligned buckets a query gets.
	q := logstore.TimeSeriesQuery{Start: day.Add(30 * time.Second), End: day.Add(logstore.MaxBuckets * time.Minute), Bucket: time.Minute, FullName: fn}
	got, err := e.st.TimeSeries(e.ctx, q)
	require.NoError(t, err)
	require.Len(t, got, logstore.MaxBuckets)
	q.End = q.End.Add(30 * time.Second)
	_, err = e.st.TimeSeries(e.ctx, q)
	require.ErrorIs(t, err, logstore.ErrInvalidQuery, "one bucket over the limit once aligned")
}
