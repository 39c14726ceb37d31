package logstoretest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/logstore"
)

// testRoundTrip: every field comes back as inserted, through every query that returns rows.
func testRoundTrip(t *testing.T, s *suite) {
	e := s.setup(t)
	day := e.days(1)
	created := day.Add(9*time.Hour + 123*time.Millisecond)
	full := logstore.Row{
		ID:           e.name("full#3"),
		Kind:         logstore.KindTask,
		FullName:     e.name("tasks.DataBackup"),
		Sender:       "models.Üser \"Model\"",
		EventType:    "events.ModelType",
		EventID:      e.name("evt"),
		Status:       logstore.StatusFail,
		Stage:        "deadLettered",
		RequestID:    e.name("req"),
		NodeID:       e.name("full"),
		ParentNodeID: e.name("parent"),
		Attempt:      5,
		CreatedAt:    created,
		RecordedAt:   created.Add(2*time.Second + 7*time.Millisecond),
		Seq:          3,
		StartTime:    created.Add(1*time.Second + 1*time.Millisecond),
		EndTime:      created.Add(2*time.Second + 6*time.Millisecond),
		Duration:     1005,
		Kwargs:       json.RawMessage(`{"userId":12345678901,"name":"Zoë \"Z\" 名前","tags":["a","b"],"nested":{"ok":true,"n":null,"f":1.5}}`),
		Result:       json.RawMessage(`[1,"two",{"three":3}]`),
		Error: &logstore.RowError{
			Code:    "timeout",
			Message: "execution exceeded 30s\nwhile saving",
			Stack:   "at handle (events/UserLoginEvent/index.js:12:5)\nat <eval>",
		},
		Host: "host-b.example:8080",
		Logs: json.RawMessage(`[{"time":"2031-01-01 09:00:00","level":"info","message":"start"},{"time":"2031-01-01 09:00:01","level":"error","message":"tab\there"}]`),
	}
	// Only what every row must have: empty optional fields come back empty, zero times zero.
	minimal := logstore.Row{
		ID:         e.name("min#0"),
		FullName:   full.FullName,
		Status:     logstore.StatusRunning,
		RequestID:  full.RequestID,
		NodeID:     e.name("min"),
		CreatedAt:  created.Add(time.Millisecond),
		RecordedAt: created.Add(time.Millisecond),
	}
	e.insert(full, minimal)

	p := e.query(logstore.Query{FullName: full.FullName})
	require.EqualValues(t, 2, p.TotalCount)
	require.Len(t, p.RowDatas, 2)
	requireRow(t, minimal, p.RowDatas[0]) // newest CreatedAt first
	requireRow(t, full, p.RowDatas[1])

	rows := e.byRequest(full.RequestID)
	require.Len(t, rows, 2)
	requireRow(t, full, rows[0])
	requireRow(t, minimal, rows[1])

	rows, err := e.st.ByNode(e.ctx, full.RequestID, full.NodeID)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	requireRow(t, full, rows[0])

	rows = e.attempts(minimal.NodeID)
	require.Len(t, rows, 1)
	requireRow(t, minimal, rows[0])
}

// testLatestState: several states per node, inserted out of order and in separate batches; every
// query shows the greatest (RecordedAt, Seq), and status filters use it.
func testLatestState(t *testing.T, s *suite) {
	e := s.setup(t)
	day := e.days(1)
	fn := e.name("events.Latest")
	req := e.name("req")

	// Node a: the last two states share RecordedAt; Seq decides (success after fail).
	a := e.node(fn, req, e.name("a"), "", day.Add(time.Hour))
	aw := state(a, 0, logstore.StatusWaiting, 0)
	ar := state(a, 1, logstore.StatusRunning, 10*time.Millisecond)
	af := state(a, 2, logstore.StatusFail, 20*time.Millisecond)
	af.Error = &logstore.RowError{Code: "js_error", Message: "first try"}
	as := state(a, 3, logstore.StatusSuccess, 20*time.Millisecond)
	as.Result = json.RawMessage(`{"ok":true}`)
	// Newest first, then older ones in later batches.
	e.insert(as)
	e.insert(aw, af)
	e.insert(ar)

	// Node b: a retry: fail at t+5s with seq 2, then running again at t+6s with seq 0 of the next
	// attempt — RecordedAt is compared before Seq.
	b := e.node(fn, req, e.name("b"), "", day.Add(time.Hour+time.Second))
	bf := state(b, 2, logstore.StatusFail, 5*time.Second)
	bw := state(b, 0, logstore.StatusWaiting, 0)
	br2 := state(b, 0, logstore.StatusRunning, 6*time.Second)
	br2.ID = b.NodeID + "#retry"
	br2.Attempt = 2
	batch := []logstore.Row{br2, bw, bf}
	e.insert(batch...)

	// Node c: states shuffled within one batch.
	c := e.node(fn, req, e.name("c"), "", day.Add(time.Hour+2*time.Second))
	crows := finished(c, logstore.StatusFail, 40)
	e.insert(crows[2], crows[0], crows[1])

	p := e.query(logstore.Query{FullName: fn})
	require.EqualValues(t, 3, p.TotalCount)
	require.Equal(t, []string{crows[2].ID, br2.ID, as.ID}, ids(p.RowDatas))
	requireRow(t, as, p.RowDatas[2])
	requireRow(t, br2, p.RowDatas[1])
	requireRow(t, crows[2], p.RowDatas[0])

	require.Equal(t, []string{as.ID, br2.ID, crows[2].ID}, ids(e.byRequest(req)))

	for _, tc := range []struct {
		status string
		want   []string
	}{
		{logstore.StatusSuccess, []string{as.ID}},
		{logstore.StatusRunning, []string{br2.ID}},
		{logstore.StatusFail, []string{crows[2].ID}},
		{logstore.StatusWaiting, []string{}},
	} {
		p := e.query(logstore.Query{FullName: fn, Status: tc.status})
		require.EqualValues(t, len(tc.want), p.TotalCount, "status %s", tc.status)
		require.Equal(t, tc.want, ids(p.RowDatas), "status %s", tc.status)
	}

	// A state older than the latest, arriving last, changes nothing.
	late := state(a, 1, logstore.StatusRunning, 15*time.Millisecond)
	late.ID = a.NodeID + "#late"
	e.insert(late)
	p = e.query(logstore.Query{FullName: fn, Status: logstore.StatusSuccess})
	require.Equal(t, []string{as.ID}, ids(p.RowDatas))
	require.Len(t, e.attempts(a.NodeID), 5)
}

// testIdempotent: the same batch twice and overlapping batches show no duplicate anywhere.
func testIdempotent(t *testing.T, s *suite) {
	e := s.setup(t)
	day := e.days(1)
	fn := e.name("events.Idem")
	req := e.name("req")
	var all []logstore.Row
	const nodes = 20
	for i := range nodes {
		n := e.node(fn, req, e.name(fmt.Sprintf("n%02d", i)), "", day.Add(time.Hour+time.Duration(i)*time.Second))
		status := logstore.StatusSuccess
		if i%4 == 0 {
			status = logstore.StatusFail
		}
		all = append(all, finished(n, status, int64(10+i))...)
	}
	first := all[:30]
	e.insert(first...)
	e.insert(first...)      // the same batch again: a retry whose first try succeeded
	e.insert(all[20:45]...) // overlaps the first
	e.insert(all[40:]...)   // overlaps the second
	e.insert(all...)        // everything once more

	p := e.query(logstore.Query{FullName: fn, PageSize: 100})
	require.EqualValues(t, nodes, p.TotalCount)
	require.Len(t, p.RowDatas, nodes)
	seen := map[string]bool{}
	for _, r := range p.RowDatas {
		require.False(t, seen[r.NodeID], "node %s twice", r.NodeID)
		seen[r.NodeID] = true
		require.Equal(t, r.NodeID+"#2", r.ID)
	}
	p = e.query(logstore.Query{FullName: fn, Status: logstore.StatusFail})
	require.EqualValues(t, nodes/4, p.TotalCount)

	rows := e.byRequest(req)
	require.Len(t, rows, nodes)
	for i := 0; i < nodes; i += 7 {
		require.Len(t, e.attempts(e.name(fmt.Sprintf("n%02d", i))), 3)
	}
	rows, err := e.st.ByNode(e.ctx, req, e.name("n03"))
	require.NoError(t, err)
	require.Len(t, rows, 1)

	sum, err := e.st.Summary(e.ctx, logstore.SummaryQuery{Start: day, End: day.AddDate(0, 0, 1), FullName: fn})
	require.NoError(t, err)
	require.Len(t, sum, 1)
	require.EqualValues(t, nodes, sum[0].Total)
	require.EqualValues(t, nodes/4, sum[0].ByStatus[logstore.StatusFail])
	require.EqualValues(t, nodes-nodes/4, sum[0].ByStatus[logstore.StatusSuccess])

	ts, err := e.st.TimeSeries(e.ctx, logstore.TimeSeriesQuery{Start: day, End: day.AddDate(0, 0, 1), Bucket: time.Hour, FullName: fn})
	require.NoError(t, err)
	var total, failed int64
	for _, b := range ts {
		total += b.Total
		failed += b.Failed
	}
	require.EqualValues(t, nodes, total)
	require.EqualValues(t, nodes/4, failed)
}

// testInvalidRowFailsBatch: one invalid row fails the whole batch, which stores nothing.
func testInvalidRowFailsBatch(t *testing.T, s *suite) {
	e := s.setup(t)
	day := e.days(1)
	fn := e.name("events.Invalid")
	breakers := map[string]func(r *logstore.Row){
		"id":         func(r *logstore.Row) { r.ID = "" },
		"nodeId":     func(r *logstore.Row) { r.NodeID = "" },
		"requestId":  func(r *logstore.Row) { r.RequestID = "" },
		"fullName":   func(r *logstore.Row) { r.FullName = "" },
		"status":     func(r *logstore.Row) { r.Status = "done" },
		"createdAt":  func(r *logstore.Row) { r.CreatedAt = time.Time{} },
		"recordedAt": func(r *logstore.Row) { r.RecordedAt = time.Time{} },
		"attempt":    func(r *logstore.Row) { r.Attempt = -1 },
	}
	i := 0
	for field, breakRow := range breakers {
		i++
		req := e.name("req-" + field)
		good1 := state(e.node(fn, req, e.name(field+"-1"), "", day.Add(time.Duration(i)*time.Minute)), 0, logstore.StatusWaiting, 0)
		bad := state(e.node(fn, req, e.name(field+"-2"), "", day.Add(time.Duration(i)*time.Minute)), 0, logstore.StatusWaiting, 0)
		good3 := state(e.node(fn, req, e.name(field+"-3"), "", day.Add(time.Duration(i)*time.Minute)), 0, logstore.StatusWaiting, 0)
		breakRow(&bad)
		err := e.st.Insert(e.ctx, []logstore.Row{good1, bad, good3})
		require.ErrorIs(t, err, logstore.ErrInvalidRow, "broken %s", field)
		require.ErrorContains(t, err, field)
		require.Empty(t, e.byRequest(req), "broken %s: nothing of the batch may be stored", field)
		require.Empty(t, e.attempts(good1.NodeID), "broken %s", field)
	}
	require.Zero(t, e.query(logstore.Query{FullName: fn}).TotalCount)

	// The store still works after refusing batches.
	ok := state(e.node(fn, e.name("req-ok"), e.name("ok"), "", day), 0, logstore.StatusWaiting, 0)
	e.insert(ok)
	require.EqualValues(t, 1, e.query(logstore.Query{FullName: fn}).TotalCount)
}

// testEmptyInsert: an empty batch is a no-op, not an error.
func testEmptyInsert(t *testing.T, s *suite) {
	e := s.setup(t)
	require.NoError(t, e.st.Insert(e.ctx, nil))
	require.NoError(t, e.st.Insert(e.ctx, []logstore.Row{}))
}

// testBigBatch: one batch of thousands of rows (the writer sends large ones) is stored whole.
func testBigBatch(t *testing.T, s *suite) {
	e := s.setup(t)
	day := e.days(1)
	fn := e.name("events.Big")
	const nodes = 1500
	rows := make([]logstore.Row, 0, 2*nodes)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range nodes {
		n := e.node(fn, e.name(fmt.Sprintf("req%d", i%50)), e.name(fmt.Sprintf("n%d", i)), "", day.Add(time.Duration(i)*time.Second))
		n.Kwargs = json.RawMessage(fmt.Sprintf(`{"i":%d,"pad":"%0300d"}`, i, rng.Int64()))
		rows = append(rows, state(n, 0, logstore.StatusWaiting, 0), state(n, 1, logstore.StatusSuccess, 30*time.Millisecond))
	}
	e.insert(rows...)
	p := e.query(logstore.Query{FullName: fn, Status: logstore.StatusSuccess, PageSize: logstore.MaxPageSize})
	require.EqualValues(t, nodes, p.TotalCount)
	require.Len(t, p.RowDatas, logstore.MaxPageSize)
	require.Len(t, e.byRequest(e.name("req7")), nodes/50)
}
