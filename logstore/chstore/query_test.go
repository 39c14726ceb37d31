package chstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/logstore"
	"github.com/trellis-run/trellis/logstore/chstore"
)

// Query's newest-window path (the total from the rollup, the page from the newest hour, then
// 8, 64… hours of the range) gives exactly the pages of grouping the whole range (NoRollup
// stores always do), for every filter it serves and for those it does not: first pages, pages
// that straddle a window's start, the last page and pages past the end; nodes created at the
// very millisecond a window starts, and just before it, several at one CreatedAt (ties broken
// by NodeID); before and after late final states change nodes' statuses (and rolled-up hours),
// and after a batch is inserted again.
func TestQueryNewestMatchesFull(t *testing.T) {
	dsn := serverDSN(t)
	conn := rawConn(t, dsn)
	db := testDatabase(t, conn)
	rolled := open(t, dsn, chstore.Options{Database: db, RollupDelay: -1})
	fresh := open(t, dsn, chstore.Options{Database: db}) // hours written within 2 min: counted from the log
	full := open(t, dsn, chstore.Options{Database: db, NoRollup: true})
	ctx := t.Context()
	start := time.Date(2032, 5, 1, 0, 0, 0, 0, time.UTC)
	gen := newRowGen(9, start, 3*24*time.Hour, 6000)
	var all []logstore.Row
	for {
		rows := gen.batch(5000)
		if len(rows) == 0 {
			break
		}
		all = append(all, rows...)
	}
	// The newest node sets the open range's end: its second + 1 s. Around the windows' starts
	// (end − 1 h, end − 8 h) put nodes at the very millisecond, several sharing it, and 1 ms
	// before.
	newest := start.Add(72*time.Hour + 5*time.Second + 250*time.Millisecond)
	end := newest.Truncate(time.Second).Add(time.Second)
	extra := func(n int, at time.Time, fullName, status string) {
		for i := range n {
			node := fmt.Sprintf("tie-%s-%s-%02d", at.Format("150405.000"), status, i)
			r := logstore.Row{ID: node + "-w", Kind: logstore.KindEvent, FullName: fullName, Status: logstore.StatusWaiting,
				RequestID: "req-" + node, NodeID: node, Attempt: 1, CreatedAt: at, RecordedAt: at}
			all = append(all, r)
			if status != logstore.StatusWaiting {
				r.ID, r.Status, r.Seq, r.RecordedAt = node+"-f", status, 1, at.Add(time.Millisecond)
				all = append(all, r)
			}
		}
	}
	extra(1, newest, benchNames[4], logstore.StatusSuccess)
	for _, w := range []time.Duration{time.Hour, 8 * time.Hour} {
		extra(5, end.Add(-w), benchNames[4], logstore.StatusSuccess)
		extra(3, end.Add(-w), benchNames[9], logstore.StatusFail)
		extra(3, end.Add(-w-time.Millisecond), benchNames[4], logstore.StatusFail)
	}
	// Held back: the final states of about a ninth of the nodes, inserted later (late states:
	// running or waiting nodes become success or fail, in hours already rolled up).
	var first, late []logstore.Row
	for _, r := range all {
		if (r.Status == logstore.StatusSuccess || r.Status == logstore.StatusFail) && len(r.NodeID) > 0 && r.NodeID[len(r.NodeID)-1]%9 == 0 {
			late = append(late, r)
		} else {
			first = append(first, r)
		}
	}
	require.NotEmpty(t, late)
	require.NoError(t, rolled.Insert(ctx, first))

	day := start.Add(24 * time.Hour)
	queries := []logstore.Query{
		{}, // the console's event log page as it opens
		{Status: logstore.StatusFail},
		{Status: logstore.StatusSuccess},
		{Status: logstore.StatusRunning},
		{FullName: benchNames[4]},
		{FullName: benchNames[9], Status: logstore.StatusFail},
		{Start: day, End: day.Add(24 * time.Hour)},
		{Start: day, End: day.Add(24 * time.Hour), Status: logstore.StatusFail},
		{Start: start.Add(90*time.Minute + 7*time.Millisecond)},
		{End: start.Add(50*time.Hour + 7*time.Millisecond)},
		{End: end.Add(-time.Hour)},            // ends at a window's start
		{Start: day, End: day.Add(time.Hour)}, // too short for the rollup: the whole range
		{Start: start.AddDate(0, 0, 10)},      // after every node
		{Sender: benchSenders[3]},             // not countable by the rollup: the whole range
		{FullName: "events.NoSuchElement"},
	}
	compare := func(msg string) {
		t.Helper()
		for _, q := range queries {
			q.Page, q.PageSize = 1, 1000
			want, err := full.Query(ctx, q)
			require.NoError(t, err)
			total := int(want.TotalCount)
			type pg struct{ page, size int }
			pages := []pg{{1, 50}, {2, 50}, {1, 1000}, {total/1000 + 1, 1000}, {total/1000 + 2, 1000}}
			for p := 10; p <= 14; p++ { // pages of 7 around the first hour's ~85 nodes
				pages = append(pages, pg{p, 7})
			}
			pages = append(pages, pg{(total + 6) / 7, 7}, pg{total + 5, 1})
			for _, p := range pages {
				if p.page < 1 {
					continue
				}
				q.Page, q.PageSize = p.page, p.size
				want, err := full.Query(ctx, q)
				require.NoError(t, err)
				for i, st := range []*chstore.Store{rolled, fresh} {
					before := chstore.NewestQueries(st)
					got, err := st.Query(ctx, q)
					if windowed(q) {
						require.Equal(t, before+1, chstore.NewestQueries(st), "%s: store %d: %+v not answered from the newest windows", msg, i, q)
					}
					require.NoError(t, err)
					require.Equal(t, want.TotalCount, got.TotalCount, "%s: store %d: %+v", msg, i, q)
					require.Equal(t, nodeIDs(want.RowDatas), nodeIDs(got.RowDatas), "%s: store %d: %+v", msg, i, q)
					require.Equal(t, want, got, "%s: store %d: %+v", msg, i, q)
				}
			}
		}
	}
	compare("before late states")
	require.NoError(t, rolled.Insert(ctx, late))
	compare("after late states")
	require.NoError(t, rolled.Insert(ctx, all[:3000])) // a replayed batch: duplicates
	compare("after a replayed batch")

	// The open range over every element really is the newest windows': its first page holds
	// the newest node, then the ties at end − 1 h come only on a later page, in NodeID order.
	p, err := rolled.Query(ctx, logstore.Query{Page: 1, PageSize: 3})
	require.NoError(t, err)
	require.Equal(t, "tie-"+newest.Format("150405.000")+"-success-00", p.RowDatas[0].NodeID)
}

// windowed says whether Query answers q from the newest windows: filters the rollup counts,
// over an open range or every element, of two hours or more of data.
func windowed(q logstore.Query) bool {
	if q.Sender != "" || (q.FullName != "" && !q.Start.IsZero() && !q.End.IsZero()) {
		return false
	}
	return q.Start.IsZero() || q.End.IsZero() || q.End.Sub(q.Start) >= 2*time.Hour
}

func nodeIDs(rows []logstore.Row) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.NodeID
	}
	return out
}
