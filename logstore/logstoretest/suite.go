// Package logstoretest is the one conformance suite every logstore.Store backend runs, so the
// embedded store and ClickHouse keep the same promises (the Store doc comment and the execution
// log issue): round trips of every field, latest state per node, idempotent inserts, atomic
// batches, getEventLog filters and paging, request and call-tree queries, attempt history,
// analytics, retention, bad input and concurrent use.
//
// It is a non-test package so each backend's own test calls Run with a constructor and the
// Features it guarantees. It owns no backend and must not import one.
//
// Every subtest works on its own element names, request and node ids, and its own UTC days
// (chosen at random per Run, years ahead of now), so backends may hand every subtest the same
// database, and several runs may share one server. The retention subtest drops days in 2001
// only, so two runs against one database at the same moment could see each other's 2001 rows
// go; run one at a time per database.
//
// What the suite takes as the contract where logstore's doc comments leave room:
//   - times round-trip to the millisecond and zero times stay zero; empty JSON stays empty, other
//     JSON is compared by value (a backend may re-encode it);
//   - days are UTC days: DropBefore(t) removes what was created before the UTC midnight that
//     starts t's day, and keeps that whole day;
//   - the order of Query rows with equal CreatedAt is the backend's: the suite gives them distinct
//     ones (ByRequest and ByNode ties are ordered by NodeID, as documented, and tested);
//   - Summary elements and ByStatus maps are compared as sets: order and zero entries are free;
//   - Query's Page 0 and PageSize 0 mean the defaults (the API layer refuses an explicit page=0).
package logstoretest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/logstore"
)

// Features says what a backend guarantees where backends may differ.
type Features struct {
	// PercentileRankTolerance is how far a backend's duration percentiles (Summary P50/P95/P99,
	// Bucket.P95) may stray from the exact ones, as a fraction of rank: with 0.01, a P95 may be
	// any value between the exact P94 and P96 (interpolating or sampling estimators). 0 means
	// exact: the value at 0-based index floor(q·n) of the ascending durations, capped at n-1
	// (ClickHouse's quantileExact).
	PercentileRankTolerance float64
	// KwargsTopLevelOnly: a kwargs filter on key k matches only a top-level k, as the contract
	// says, never a k inside a nested object ({"meta": {"userId": 1}} for userId=1). The suite
	// checks that only when a backend claims it: ClickHouse's visitParam functions, all there is
	// before JSONExtract, find a key at any depth.
	KwargsTopLevelOnly bool
}

// Run runs the conformance suite. newStore is called once per subtest and must return a Store
// the subtest may Close (Close is safe twice, so a backend may also close it in t.Cleanup); the
// stores it returns may share one database. Subtests run in parallel.
func Run(t *testing.T, newStore func(t *testing.T) logstore.Store, f Features) {
	t.Helper()
	s := newSuite(newStore, f)
	t.Logf("logstoretest: run %s, days from %s", s.run, s.base.Format("2006-01-02"))
	tests := []struct {
		name string
		fn   func(t *testing.T, s *suite)
	}{
		{"RoundTrip", testRoundTrip},
		{"LatestState", testLatestState},
		{"Idempotent", testIdempotent},
		{"InvalidRowFailsBatch", testInvalidRowFailsBatch},
		{"EmptyInsert", testEmptyInsert},
		{"BigBatch", testBigBatch},
		{"QueryFullNameAndTime", testQueryFullNameAndTime},
		{"QueryStatus", testQueryStatus},
		{"QueryPaging", testQueryPaging},
		{"QueryFreeFilters", testQueryFreeFilters},
		{"QueryStage", testQueryStage},
		{"ByRequest", testByRequest},
		{"ByNode", testByNode},
		{"Attempts", testAttempts},
		{"Summary", testSummary},
		{"TimeSeries", testTimeSeries},
		{"TimeSeriesAligned", testTimeSeriesAligned},
		{"DropBefore", testDropBefore},
		{"BadQueries", testBadQueries},
		{"Concurrent", testConcurrent},
		{"CloseTwice", testCloseTwice},
		{"LagSamplesApart", testLagSamplesApart},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, s)
		})
	}
}

type suite struct {
	newStore func(t *testing.T) logstore.Store
	f        Features
	run      string    // unique per Run call
	base     time.Time // UTC midnight of the first day this run may use
	days     atomic.Int64
}

func newSuite(newStore func(t *testing.T) logstore.Store, f Features) *suite {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	// Days far ahead of now and apart between runs: rows of an earlier run in a shared database
	// fall on other days, so queries over "every element" in a range see only this run's rows.
	n, err := rand.Int(rand.Reader, big.NewInt(9000))
	if err != nil {
		panic(err)
	}
	base := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, int(n.Int64())*3)
	return &suite{newStore: newStore, f: f, run: hex.EncodeToString(b[:]), base: base}
}

// env is one subtest's bundle: its store, context and unique names.
type env struct {
	t   *testing.T
	s   *suite
	st  logstore.Store
	ctx context.Context
	id  string
}

func (s *suite) setup(t *testing.T) *env {
	t.Helper()
	st := s.newStore(t)
	require.NotNil(t, st, "newStore returned nil")
	name := t.Name()
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	return &env{t: t, s: s, st: st, ctx: t.Context(), id: "lt" + s.run + "_" + name}
}

// name is an element fullName, request id or node id no other subtest or run uses.
func (e *env) name(n string) string { return e.id + "." + n }

// days reserves n consecutive UTC days for this subtest and returns the first midnight.
func (e *env) days(n int) time.Time {
	end := e.s.days.Add(int64(n))
	return e.s.base.AddDate(0, 0, int(end)-n)
}

// node is a first state (waiting/queued) of a node with realistic fields; states derive from it.
func (e *env) node(fullName, request, node, parent string, created time.Time) logstore.Row {
	return logstore.Row{
		Kind:         logstore.KindEvent,
		FullName:     fullName,
		Sender:       "models.UserModel",
		EventType:    "events.NormalType",
		EventID:      "evt-" + node,
		Status:       logstore.StatusWaiting,
		Stage:        "queued",
		RequestID:    request,
		NodeID:       node,
		ParentNodeID: parent,
		Attempt:      1,
		CreatedAt:    created,
		RecordedAt:   created,
		Kwargs:       json.RawMessage(`{"userId":7,"name":"Ann"}`),
		Host:         "host-a",
	}
}

// state is state number n of base's node: recorded after the creation, with its own ID and Seq.
func state(base logstore.Row, n int, status string, after time.Duration) logstore.Row {
	r := base
	r.ID = fmt.Sprintf("%s#%d", base.NodeID, n)
	r.Seq = uint32(n)
	r.Status = status
	r.RecordedAt = base.CreatedAt.Add(after)
	switch status {
	case logstore.StatusWaiting:
		r.Stage = "queued"
	case logstore.StatusRunning:
		r.Stage = ""
		r.StartTime = base.CreatedAt.Add(after)
	default:
		r.Stage = ""
		r.StartTime = base.CreatedAt
		r.EndTime = base.CreatedAt.Add(after)
		r.Duration = after.Milliseconds()
	}
	return r
}

// finished is a node's three states (waiting, running, then status) with the given duration.
func finished(base logstore.Row, status string, durationMS int64) []logstore.Row {
	d := time.Duration(durationMS) * time.Millisecond
	w := state(base, 0, logstore.StatusWaiting, 0)
	r := state(base, 1, logstore.StatusRunning, time.Millisecond)
	f := state(base, 2, status, d+time.Millisecond)
	f.StartTime = base.CreatedAt.Add(time.Millisecond)
	f.Duration = durationMS
	if status == logstore.StatusFail {
		f.Error = &logstore.RowError{Code: "js_error", Message: "boom"}
	}
	return []logstore.Row{w, r, f}
}

func (e *env) insert(rows ...logstore.Row) {
	e.t.Helper()
	require.NoError(e.t, e.st.Insert(e.ctx, rows))
}

func (e *env) query(q logstore.Query) logstore.Page {
	e.t.Helper()
	p, err := e.st.Query(e.ctx, q)
	require.NoError(e.t, err, "Query(%+v)", q)
	return p
}

func (e *env) byRequest(req string) []logstore.Row {
	e.t.Helper()
	rows, err := e.st.ByRequest(e.ctx, req)
	require.NoError(e.t, err, "ByRequest(%s)", req)
	return rows
}

func (e *env) attempts(node string) []logstore.Row {
	e.t.Helper()
	rows, err := e.st.Attempts(e.ctx, node)
	require.NoError(e.t, err, "Attempts(%s)", node)
	return rows
}

func ids(rows []logstore.Row) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.ID
	}
	return out
}

func nodeIDs(rows []logstore.Row) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.NodeID
	}
	return out
}

// requireRow checks every field of got against want: times to the millisecond, JSON by value.
func requireRow(t *testing.T, want, got logstore.Row) {
	t.Helper()
	msg := "row " + want.ID
	require.Equal(t, want.ID, got.ID, msg)
	require.Equal(t, want.Kind, got.Kind, msg+": kind")
	require.Equal(t, want.FullName, got.FullName, msg+": fullName")
	require.Equal(t, want.Sender, got.Sender, msg+": sender")
	require.Equal(t, want.EventType, got.EventType, msg+": eventType")
	require.Equal(t, want.EventID, got.EventID, msg+": eventId")
	require.Equal(t, want.Status, got.Status, msg+": status")
	require.Equal(t, want.Stage, got.Stage, msg+": stage")
	require.Equal(t, want.RequestID, got.RequestID, msg+": requestId")
	require.Equal(t, want.NodeID, got.NodeID, msg+": nodeId")
	require.Equal(t, want.ParentNodeID, got.ParentNodeID, msg+": parentNodeId")
	require.Equal(t, want.Attempt, got.Attempt, msg+": attempt")
	requireTime(t, want.CreatedAt, got.CreatedAt, msg+": createdAt")
	requireTime(t, want.RecordedAt, got.RecordedAt, msg+": recordedAt")
	require.Equal(t, want.Seq, got.Seq, msg+": seq")
	requireTime(t, want.StartTime, got.StartTime, msg+": startTime")
	requireTime(t, want.EndTime, got.EndTime, msg+": endTime")
	require.Equal(t, want.Duration, got.Duration, msg+": duration")
	requireJSON(t, want.Kwargs, got.Kwargs, msg+": kwargs")
	requireJSON(t, want.Result, got.Result, msg+": result")
	requireJSON(t, want.Logs, got.Logs, msg+": logs")
	require.Equal(t, want.Error, got.Error, msg+": error")
	require.Equal(t, want.Host, got.Host, msg+": host")
}

func requireTime(t *testing.T, want, got time.Time, msg string) {
	t.Helper()
	if want.IsZero() {
		require.True(t, got.IsZero(), "%s: want the zero time, got %s", msg, got)
		return
	}
	require.True(t, want.Equal(got), "%s: want %s, got %s", msg, want.UTC().Format(time.RFC3339Nano), got.UTC().Format(time.RFC3339Nano))
}

func requireJSON(t *testing.T, want, got json.RawMessage, msg string) {
	t.Helper()
	if len(want) == 0 {
		require.Empty(t, got, msg)
		return
	}
	require.JSONEq(t, string(want), string(got), msg)
}

// requirePercentile checks got is the q-quantile of durations within the backend's tolerance.
func (s *suite) requirePercentile(t *testing.T, durations []int64, q, got float64, msg string) {
	t.Helper()
	if len(durations) == 0 {
		require.Zero(t, got, "%s: no finished node, percentile must be 0", msg)
		return
	}
	sorted := append([]int64(nil), durations...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	at := func(q float64) float64 {
		i := int(q * float64(len(sorted)))
		i = max(0, min(i, len(sorted)-1))
		return float64(sorted[i])
	}
	tol := s.f.PercentileRankTolerance
	if tol == 0 {
		require.InDelta(t, at(q), got, 1e-9, "%s: exact p%.0f", msg, q*100)
		return
	}
	lo, hi := at(q-tol), at(q+tol)
	require.True(t, got >= lo-1e-9 && got <= hi+1e-9, "%s: p%.0f = %v, want within [%v, %v] (rank tolerance %v)", msg, q*100, got, lo, hi, tol)
}
