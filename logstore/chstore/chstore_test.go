package chstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"

	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/logstore"
	"github.com/trellis-run/trellis/logstore/chstore"
	"github.com/trellis-run/trellis/logstore/logstoretest"
)

const envDSN = "TRELLIS_TEST_CLICKHOUSE"

// serverDSN is the test server's DSN; without one the test is skipped, saying how to run it.
func serverDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(envDSN)
	if dsn == "" {
		t.Skipf(`%s is not set: run eval "$(scripts/services.sh start)" to test against a real ClickHouse`, envDSN)
	}
	return dsn
}

// rawConn is a plain driver connection for setting up and inspecting what the store did.
func rawConn(t testing.TB, dsn string) driver.Conn {
	t.Helper()
	opts, err := clickhouse.ParseDSN(dsn)
	require.NoError(t, err)
	conn, err := clickhouse.Open(opts)
	require.NoError(t, err)
	require.NoError(t, conn.Ping(context.Background()), "ClickHouse at %s is not answering; run scripts/services.sh start", dsn)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// testDatabase is a database name of its own for this test, dropped when it ends.
func testDatabase(t *testing.T, conn driver.Conn) string {
	t.Helper()
	var b [6]byte
	_, err := rand.Read(b[:])
	require.NoError(t, err)
	db := "trellis_test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		require.NoError(t, conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db))
	})
	return db
}

func open(t *testing.T, dsn string, opts chstore.Options) *chstore.Store {
	t.Helper()
	st, err := chstore.Open(t.Context(), dsn, opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	return st
}

func TestConformance(t *testing.T) {
	dsn := serverDSN(t)
	conn := rawConn(t, dsn)
	db := testDatabase(t, conn)
	open(t, dsn, chstore.Options{Database: db}) // create the schema once, before parallel subtests
	logstoretest.Run(t, func(t *testing.T) logstore.Store {
		return open(t, dsn, chstore.Options{Database: db})
	}, logstoretest.Features{})
}

// A port nothing listens on: Open fails at once with ErrUnavailable naming the address.
func TestOpenServerDown(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())

	start := time.Now()
	_, err = chstore.Open(t.Context(), "clickhouse://"+addr+"/default", chstore.Options{})
	require.ErrorIs(t, err, logstore.ErrUnavailable)
	require.ErrorContains(t, err, addr)
	require.Less(t, time.Since(start), 2*time.Second)
}

// A server that accepts connections but never answers: Open gives up after about DialTimeout.
func TestOpenServerHangs(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})

	start := time.Now()
	_, err = chstore.Open(t.Context(), "clickhouse://"+l.Addr().String()+"/default", chstore.Options{DialTimeout: 300 * time.Millisecond})
	require.ErrorIs(t, err, logstore.ErrUnavailable)
	require.Less(t, time.Since(start), 3*time.Second)
}

func TestOpenBadOptions(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		dsn  string
		opts chstore.Options
		want string
	}{
		"distributed without cluster": {"clickhouse://127.0.0.1:1/default", chstore.Options{Distributed: true}, "Cluster"},
		"table name":                  {"clickhouse://127.0.0.1:1/default", chstore.Options{Table: "log; DROP"}, "Table"},
		"database name":               {"clickhouse://127.0.0.1:1/default", chstore.Options{Database: "a-b"}, "Database"},
		"http protocol":               {"http://127.0.0.1:8123/default", chstore.Options{}, "native"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := chstore.Open(t.Context(), tc.dsn, tc.opts)
			require.ErrorIs(t, err, chstore.ErrOptions)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// A table of the log's name with other columns is refused at Open, naming what differs.
func TestOpenRefusedSchema(t *testing.T) {
	t.Parallel()
	dsn := serverDSN(t)
	conn := rawConn(t, dsn)
	db := testDatabase(t, conn)
	ctx := t.Context()
	require.NoError(t, conn.Exec(ctx, "CREATE DATABASE "+db))
	require.NoError(t, conn.Exec(ctx, "CREATE TABLE "+db+".exec_log (id String, full_name UInt32, created_at DateTime) ENGINE = MergeTree ORDER BY id"))

	_, err := chstore.Open(ctx, dsn, chstore.Options{Database: db})
	require.ErrorIs(t, err, logstore.ErrUnavailable)
	require.ErrorIs(t, err, chstore.ErrSchema)
	require.ErrorContains(t, err, "column full_name is UInt32")
	require.ErrorContains(t, err, "no column node_id")

	// Another table name in the same database works.
	st := open(t, dsn, chstore.Options{Database: db, Table: "exec_log2"})
	require.NotEmpty(t, st.ServerVersion())
}

// A server that refuses the DDL (a read-only user) is a refused schema saying what to check.
func TestOpenDDLRefused(t *testing.T) {
	t.Parallel()
	dsn := serverDSN(t)
	db := testDatabase(t, rawConn(t, dsn))
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	_, err := chstore.Open(t.Context(), dsn+sep+"readonly=2", chstore.Options{Database: db})
	require.ErrorIs(t, err, logstore.ErrUnavailable)
	require.ErrorIs(t, err, chstore.ErrSchema)
	require.ErrorContains(t, err, "refused the schema")
	require.ErrorContains(t, err, "readonly")
}

// A view holding the keys table's name is not mistaken for the keys table.
func TestOpenForeignKeysTable(t *testing.T) {
	t.Parallel()
	dsn := serverDSN(t)
	conn := rawConn(t, dsn)
	db := testDatabase(t, conn)
	ctx := t.Context()
	require.NoError(t, conn.Exec(ctx, "CREATE DATABASE "+db))
	require.NoError(t, conn.Exec(ctx, "CREATE VIEW "+db+".exec_log_keys AS SELECT 1 AS x"))
	_, err := chstore.Open(ctx, dsn, chstore.Options{Database: db})
	require.ErrorIs(t, err, logstore.ErrUnavailable)
	require.ErrorIs(t, err, chstore.ErrSchema)
	require.ErrorContains(t, err, "exec_log_keys")
	require.ErrorContains(t, err, "no column key_hash")
}

// proxy forwards TCP to the server until cut, standing in for a ClickHouse that goes down.
type proxy struct {
	l     net.Listener
	mu    sync.Mutex
	conns []net.Conn
	cut   bool
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{l: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			if p.cut {
				p.mu.Unlock()
				_ = c.Close()
				_ = up.Close()
				continue
			}
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
			go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
		}
	}()
	t.Cleanup(p.stop)
	return p
}

func (p *proxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	_ = p.l.Close()
	for _, c := range p.conns {
		_ = c.Close()
	}
}

// A server that goes away after Open: every call fails quickly with ErrUnavailable.
func TestServerGoesDown(t *testing.T) {
	t.Parallel()
	dsn := serverDSN(t)
	conn := rawConn(t, dsn)
	db := testDatabase(t, conn)
	opts, err := clickhouse.ParseDSN(dsn)
	require.NoError(t, err)
	p := newProxy(t, opts.Addr[0])
	st := open(t, "clickhouse://"+p.l.Addr().String()+"/default", chstore.Options{Database: db, DialTimeout: 500 * time.Millisecond})
	now := time.Now().UTC()
	row := logstore.Row{ID: "a#0", FullName: "events.A", Status: logstore.StatusWaiting, RequestID: "r", NodeID: "a", CreatedAt: now, RecordedAt: now}
	require.NoError(t, st.Insert(t.Context(), []logstore.Row{row}))

	p.stop()
	ctx := t.Context()
	start := time.Now()
	calls := map[string]func() error{
		"insert":     func() error { return st.Insert(ctx, []logstore.Row{row}) },
		"query":      func() error { _, err := st.Query(ctx, logstore.Query{FullName: "events.A"}); return err },
		"byRequest":  func() error { _, err := st.ByRequest(ctx, "r"); return err },
		"byNode":     func() error { _, err := st.ByNode(ctx, "r", "a"); return err },
		"attempts":   func() error { _, err := st.Attempts(ctx, "a"); return err },
		"dropBefore": func() error { return st.DropBefore(ctx, now) },
		"summary": func() error {
			_, err := st.Summary(ctx, logstore.SummaryQuery{Start: now.Add(-time.Hour), End: now.Add(time.Hour)})
			return err
		},
		"timeSeries": func() error {
			_, err := st.TimeSeries(ctx, logstore.TimeSeriesQuery{Start: now.Add(-time.Hour), End: now.Add(time.Hour), Bucket: time.Minute})
			return err
		},
	}
	for name, call := range calls {
		err := call()
		require.ErrorIs(t, err, logstore.ErrUnavailable, name)
		require.NotErrorIs(t, err, logstore.ErrInvalidQuery, name)
	}
	require.Less(t, time.Since(start), 10*time.Second)
}

// Kwargs written with spaces are still found by the filters (18.16's visitParam functions
// need compact JSON, so Insert compacts it).
func TestKwargsWhitespace(t *testing.T) {
	t.Parallel()
	dsn := serverDSN(t)
	db := testDatabase(t, rawConn(t, dsn))
	st := open(t, dsn, chstore.Options{Database: db})
	created := time.Date(2030, 5, 1, 10, 0, 0, 0, time.UTC)
	row := logstore.Row{ID: "n#0", FullName: "events.K", Status: logstore.StatusSuccess, RequestID: "r", NodeID: "n",
		CreatedAt: created, RecordedAt: created, Kwargs: json.RawMessage("{ \"userId\" :\t42,\n \"name\": \"A B\" }")}
	require.NoError(t, st.Insert(t.Context(), []logstore.Row{row}))
	for _, kw := range []map[string]string{{"userId": "42"}, {"name": "A B"}} {
		p, err := st.Query(t.Context(), logstore.Query{FullName: "events.K", Kwargs: kw})
		require.NoError(t, err)
		require.EqualValues(t, 1, p.TotalCount, "%v", kw)
		require.JSONEq(t, string(row.Kwargs), string(p.RowDatas[0].Kwargs))
	}
}

// Copies of a row (a retried insert) are folded by merges too, not only hidden by queries:
// the sorting key ends in id.
func TestMergeFoldsCopies(t *testing.T) {
	t.Parallel()
	dsn := serverDSN(t)
	conn := rawConn(t, dsn)
	db := testDatabase(t, conn)
	st := open(t, dsn, chstore.Options{Database: db})
	created := time.Date(2030, 5, 2, 10, 0, 0, 0, time.UTC)
	var rows []logstore.Row
	for i := range 10 {
		rows = append(rows, logstore.Row{ID: fmt.Sprintf("n%d#0", i), FullName: "events.M", Status: logstore.StatusWaiting,
			RequestID: "r", NodeID: fmt.Sprintf("n%d", i), CreatedAt: created, RecordedAt: created})
	}
	for range 3 {
		require.NoError(t, st.Insert(t.Context(), rows))
	}
	ctx := t.Context()
	count := func() uint64 {
		var n uint64
		require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM "+db+".exec_log").Scan(&n))
		return n
	}
	require.EqualValues(t, 30, count(), "three inserts of ten rows before any merge")
	require.NoError(t, conn.Exec(ctx, "OPTIMIZE TABLE "+db+".exec_log FINAL"))
	require.EqualValues(t, 10, count())
	p, err := st.Query(ctx, logstore.Query{FullName: "events.M"})
	require.NoError(t, err)
	require.EqualValues(t, 10, p.TotalCount)
}

// DropBefore removes whole partitions of both tables, and only those before the day.
func TestDropBeforePartitions(t *testing.T) {
	t.Parallel()
	dsn := serverDSN(t)
	conn := rawConn(t, dsn)
	db := testDatabase(t, conn)
	st := open(t, dsn, chstore.Options{Database: db})
	day := time.Date(2030, 6, 10, 0, 0, 0, 0, time.UTC)
	var rows []logstore.Row
	for i := range 5 {
		c := day.AddDate(0, 0, i).Add(23 * time.Hour)
		rows = append(rows, logstore.Row{ID: fmt.Sprintf("n%d#0", i), FullName: "events.D", Status: logstore.StatusWaiting,
			RequestID: fmt.Sprintf("r%d", i), NodeID: fmt.Sprintf("n%d", i), CreatedAt: c, RecordedAt: c})
	}
	require.NoError(t, st.Insert(t.Context(), rows))
	partitions := func(table string) []string {
		r, err := conn.Query(t.Context(), fmt.Sprintf("SELECT DISTINCT partition FROM system.parts WHERE database = '%s' AND table = '%s' AND active ORDER BY partition", db, table))
		require.NoError(t, err)
		defer r.Close()
		var out []string
		for r.Next() {
			var p string
			require.NoError(t, r.Scan(&p))
			out = append(out, p)
		}
		return out
	}
	require.Equal(t, []string{"20300610", "20300611", "20300612", "20300613", "20300614"}, partitions("exec_log"))
	require.NoError(t, st.DropBefore(t.Context(), day.AddDate(0, 0, 2).Add(5*time.Hour)))
	require.Equal(t, []string{"20300612", "20300613", "20300614"}, partitions("exec_log"))
	require.Equal(t, []string{"203006"}, partitions("exec_log_keys"), "June is not over on the 12th")
	got, err := st.ByRequest(t.Context(), "r1")
	require.NoError(t, err)
	require.Empty(t, got)
	got, err = st.ByRequest(t.Context(), "r2")
	require.NoError(t, err)
	require.Len(t, got, 1)
}

// Calls after Close fail with ErrClosed rather than panicking on a closed connection.
func TestUseAfterClose(t *testing.T) {
	t.Parallel()
	dsn := serverDSN(t)
	db := testDatabase(t, rawConn(t, dsn))
	st, err := chstore.Open(t.Context(), dsn, chstore.Options{Database: db})
	require.NoError(t, err)
	require.NoError(t, st.Close())
	require.NoError(t, st.Close())
	_, err = st.Query(t.Context(), logstore.Query{})
	require.ErrorIs(t, err, chstore.ErrClosed)
	require.ErrorIs(t, err, logstore.ErrUnavailable)
	require.ErrorIs(t, st.Insert(t.Context(), []logstore.Row{{}}), chstore.ErrClosed)
}

// Query over every element with selective filters (which first narrow the nodes by their
// rows) answers exactly what the latest states say: nodes whose earlier state matched but whose
// latest does not stay out, and filter values that look like SQL or JSON are plain values.
func TestQueryAllElementsFilters(t *testing.T) {
	t.Parallel()
	dsn := serverDSN(t)
	db := testDatabase(t, rawConn(t, dsn))
	st := open(t, dsn, chstore.Options{Database: db})
	ctx := t.Context()
	day := time.Date(2031, 3, 3, 0, 0, 0, 0, time.UTC)
	type node struct {
		name, element, status, code, sender, kwargs string
		staleStatus, staleCode, staleKwargs         string // an earlier state
	}
	nodes := []node{
		{"n1", "events.A", "fail", "timeout", "models.U", `{"user":1,"x":{}}`, "running", "", `{"user":9}`},
		{"n2", "events.B", "fail", "js_error", "models.U", `{"user":2,"x":"{}"}`, "fail", "timeout", `{"user":1}`},
		{"n3", "events.C", "success", "", "models.O", `{"user":1,"q":"it's"}`, "fail", "timeout", `{"user":1}`},
		{"n4", "events.A", "running", "", "models.O", `{"user":3}`, "fail", "js_error", `{"user":3}`},
		{"n5", "events.B", "fail", "timeout", "models.O", `{"user":"1"}`, "waiting", "", `{"user":1}`},
	}
	var rows []logstore.Row
	for i, n := range nodes {
		created := day.Add(time.Duration(i) * time.Minute)
		base := logstore.Row{FullName: n.element, RequestID: "r", NodeID: n.name, CreatedAt: created, Sender: n.sender}
		stale := base
		stale.ID, stale.Status, stale.RecordedAt, stale.Kwargs = n.name+"#0", n.staleStatus, created, json.RawMessage(n.staleKwargs)
		if n.staleCode != "" {
			stale.Error = &logstore.RowError{Code: n.staleCode}
		}
		latest := base
		latest.ID, latest.Status, latest.RecordedAt, latest.Seq, latest.Kwargs = n.name+"#1", n.status, created.Add(time.Second), 1, json.RawMessage(n.kwargs)
		if n.code != "" {
			latest.Error = &logstore.RowError{Code: n.code}
		}
		rows = append(rows, stale, latest)
	}
	require.NoError(t, st.Insert(ctx, rows))
	for _, tc := range []struct {
		name string
		q    logstore.Query
		want []string // newest first
	}{
		{"fail", logstore.Query{Status: "fail"}, []string{"n5", "n2", "n1"}},
		{"error code", logstore.Query{ErrorCode: "timeout"}, []string{"n5", "n1"}},
		{"fail and code", logstore.Query{Status: "fail", ErrorCode: "js_error"}, []string{"n2"}},
		{"sender", logstore.Query{Sender: "models.O"}, []string{"n5", "n4", "n3"}},
		{"kwargs", logstore.Query{Kwargs: map[string]string{"user": "1"}}, []string{"n5", "n3", "n1"}},
		{"kwargs and fail", logstore.Query{Status: "fail", Kwargs: map[string]string{"user": "1"}}, []string{"n5", "n1"}},
		{"kwargs braces", logstore.Query{Kwargs: map[string]string{"x": "{}"}}, []string{"n2", "n1"}},
		{"kwargs quote", logstore.Query{Kwargs: map[string]string{"q": "it's"}}, []string{"n3"}},
		{"success", logstore.Query{Status: "success"}, []string{"n3"}},
	} {
		q := tc.q
		q.Start, q.End = day, day.AddDate(0, 0, 1)
		p, err := st.Query(ctx, q)
		require.NoError(t, err, tc.name)
		require.EqualValues(t, len(tc.want), p.TotalCount, tc.name)
		got := make([]string, len(p.RowDatas))
		for i, r := range p.RowDatas {
			got[i] = r.NodeID
			require.Equal(t, r.NodeID+"#1", r.ID, "%s: latest state", tc.name)
		}
		require.Equal(t, tc.want, got, tc.name)
	}
}

// Each bucket's P95 is ClickHouse's own over the durations of that bucket's nodes. Buckets
// align to the clock and count their whole width, as in every store (the conformance subtest
// TimeSeriesAligned); Start and End here fall inside buckets.
func TestTimeSeriesP95PerBucket(t *testing.T) {
	t.Parallel()
	dsn := serverDSN(t)
	db := testDatabase(t, rawConn(t, dsn))
	st := open(t, dsn, chstore.Options{Database: db})
	ctx := t.Context()
	start := time.Date(2031, 4, 4, 10, 7, 30, 500e6, time.UTC)
	end := start.Add(13 * time.Minute)
	var rows []logstore.Row
	for i, at := range []time.Duration{-time.Millisecond, 0, 4*time.Minute + 59*time.Second, 5 * time.Minute, 12 * time.Minute, 13 * time.Minute} {
		c := start.Add(at)
		rows = append(rows, logstore.Row{ID: fmt.Sprintf("n%d#0", i), FullName: "events.T", Status: logstore.StatusSuccess, Duration: int64(10 * (i + 1)),
			RequestID: "r", NodeID: fmt.Sprintf("n%d", i), CreatedAt: c, RecordedAt: c})
	}
	require.NoError(t, st.Insert(ctx, rows))
	got, err := st.TimeSeries(ctx, logstore.TimeSeriesQuery{Start: start, End: end, Bucket: 5 * time.Minute})
	require.NoError(t, err)
	first := time.Date(2031, 4, 4, 10, 5, 0, 0, time.UTC) // the bucket holding Start
	wants := []struct {
		total int64
		p95   float64
	}{{2, 20}, {2, 40}, {1, 50}, {1, 60}}
	require.Len(t, got, len(wants))
	for i, want := range wants {
		require.True(t, first.Add(time.Duration(i)*5*time.Minute).Equal(got[i].Start), "bucket %d starts %s", i, got[i].Start)
		require.Equal(t, want.total, got[i].Total, "bucket %d", i)
		require.Equal(t, want.total, got[i].ByStatus[logstore.StatusSuccess], "bucket %d", i)
		require.Equal(t, want.p95, got[i].P95, "bucket %d", i)
	}
}

// One batch whose rows fall on many days (a replayed spool, states of long-lived nodes) is one
// insert: newer servers' max_partitions_per_insert_block (100) is lifted for it.
func TestInsertManyDays(t *testing.T) {
	t.Parallel()
	dsn := serverDSN(t)
	db := testDatabase(t, rawConn(t, dsn))
	st := open(t, dsn, chstore.Options{Database: db})
	ctx := t.Context()
	day := time.Date(2032, 1, 1, 12, 0, 0, 0, time.UTC)
	var rows []logstore.Row
	for i := range 101 { // one day more than the limit
		c := day.AddDate(0, 0, i)
		rows = append(rows, logstore.Row{ID: fmt.Sprintf("n%d#0", i), FullName: "events.Days", Status: logstore.StatusSuccess,
			RequestID: "r", NodeID: fmt.Sprintf("n%d", i), CreatedAt: c, RecordedAt: c})
	}
	require.NoError(t, st.Insert(ctx, rows))
	got, err := st.ByRequest(ctx, "r")
	require.NoError(t, err)
	require.Len(t, got, len(rows))
	p, err := st.Query(ctx, logstore.Query{FullName: "events.Days"})
	require.NoError(t, err)
	require.EqualValues(t, len(rows), p.TotalCount)
}
