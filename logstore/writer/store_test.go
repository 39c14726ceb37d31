package writer

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/logstore"
)

// memStore is the smallest Store the writer needs: idempotent on Row.ID like every backend,
// and counting what it was sent, so tests can tell a resend (harmless) from a duplicate (a
// bug). Only Insert matters here; the real backends run the writer in their own tests.
type memStore struct {
	mu      sync.Mutex
	rows    map[string]logstore.Row
	sent    map[string]int // how many successful inserts carried each ID
	inserts int            // successful Insert calls
	sizes   []int          // rows per successful Insert
	changed chan struct{}  // closed and replaced on every successful Insert
}

var _ logstore.Store = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{rows: map[string]logstore.Row{}, sent: map[string]int{}, changed: make(chan struct{})}
}

func (m *memStore) Insert(ctx context.Context, rows []logstore.Row) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for i := range rows {
		if err := rows[i].Validate(); err != nil {
			return fmt.Errorf("memstore: insert: %w", err)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range rows {
		m.rows[r.ID] = r
		m.sent[r.ID]++
	}
	m.inserts++
	m.sizes = append(m.sizes, len(rows))
	close(m.changed)
	m.changed = make(chan struct{})
	return nil
}

// count is the number of distinct rows stored.
func (m *memStore) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.rows)
}

// waitCount waits until the store holds n distinct rows.
func (m *memStore) waitCount(t *testing.T, n int, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		m.mu.Lock()
		got, ch := len(m.rows), m.changed
		m.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("store holds %d rows after %v, want %d", got, within, n)
		}
	}
}

func (m *memStore) snapshot() (rows map[string]logstore.Row, sent map[string]int, sizes []int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rows = make(map[string]logstore.Row, len(m.rows))
	for k, v := range m.rows {
		rows[k] = v
	}
	sent = make(map[string]int, len(m.sent))
	for k, v := range m.sent {
		sent[k] = v
	}
	return rows, sent, append([]int(nil), m.sizes...)
}

func (m *memStore) Query(context.Context, logstore.Query) (logstore.Page, error) {
	return logstore.Page{}, nil
}
func (m *memStore) ByRequest(context.Context, string) ([]logstore.Row, error)      { return nil, nil }
func (m *memStore) ByNode(context.Context, string, string) ([]logstore.Row, error) { return nil, nil }
func (m *memStore) Attempts(context.Context, string) ([]logstore.Row, error)       { return nil, nil }
func (m *memStore) Summary(context.Context, logstore.SummaryQuery) ([]logstore.ElementSummary, error) {
	return nil, nil
}
func (m *memStore) TimeSeries(context.Context, logstore.TimeSeriesQuery) ([]logstore.Bucket, error) {
	return nil, nil
}
func (m *memStore) DropBefore(context.Context, time.Time) error { return nil }
func (m *memStore) Close() error                                { return nil }

// faultStore wraps a real Store and fails inserts on demand, as asynq's testbroker does: while
// down, every Insert fails with ErrUnavailable; in secret mode, the rows are stored and then
// an error is returned anyway (a timeout after the server committed).
type faultStore struct {
	logstore.Store
	mu       sync.Mutex
	down     bool
	secret   int // the next this-many successful inserts report a failure
	failures int
	failed   chan struct{} // closed and replaced on every failure
	insertFn func(ctx context.Context, rows []logstore.Row) error
}

var _ logstore.Store = (*faultStore)(nil)

func newFaultStore(s logstore.Store) *faultStore {
	return &faultStore{Store: s, failed: make(chan struct{})}
}

func (f *faultStore) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

func (f *faultStore) failSecretly(n int) {
	f.mu.Lock()
	f.secret = n
	f.mu.Unlock()
}

func (f *faultStore) Insert(ctx context.Context, rows []logstore.Row) error {
	f.mu.Lock()
	down, secret := f.down, f.secret > 0
	f.mu.Unlock()
	if down {
		f.fail()
		return fmt.Errorf("faultstore: insert: %w: connection refused", logstore.ErrUnavailable)
	}
	if err := f.Store.Insert(ctx, rows); err != nil {
		return err
	}
	if secret {
		f.mu.Lock()
		f.secret--
		f.mu.Unlock()
		f.fail()
		return fmt.Errorf("faultstore: insert: %w: read timeout after the server committed", logstore.ErrUnavailable)
	}
	return nil
}

func (f *faultStore) fail() {
	f.mu.Lock()
	f.failures++
	close(f.failed)
	f.failed = make(chan struct{})
	f.mu.Unlock()
}

// waitFailures waits until at least n inserts failed.
func (f *faultStore) waitFailures(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		f.mu.Lock()
		got, ch := f.failures, f.failed
		f.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%d inserts failed, want %d", got, n)
		}
	}
}

// base is the fixed instant test rows are created at.
var base = time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.UTC)

// testRow is a row shaped like a real one: about 300 bytes of kwargs, every field set.
func testRow(i int) logstore.Row {
	kw, _ := json.Marshal(map[string]any{
		"userId": i, "orderId": fmt.Sprintf("ORD-%010d", i), "email": fmt.Sprintf("user%d@example.com", i),
		"items":   []map[string]any{{"sku": "SKU-1001", "qty": 2, "price": 19.99}, {"sku": "SKU-2002", "qty": 1, "price": 5.5}},
		"address": map[string]string{"street": "221B Baker Street", "city": "London", "zip": "NW1 6XE"},
		"note":    "Deliver between 9am and 5pm; ring twice",
	})
	created := base.Add(time.Duration(i) * time.Millisecond)
	r := logstore.Row{
		ID: fmt.Sprintf("row-%09d", i), Kind: logstore.KindEvent,
		FullName: fmt.Sprintf("events.OrderPlaced%d", i%7), Sender: "models.OrderModel", EventType: "events.NormalType",
		EventID: fmt.Sprintf("evt-%07d", i/10), Status: logstore.StatusSuccess, Stage: "done",
		RequestID: fmt.Sprintf("req-%07d", i/10), NodeID: fmt.Sprintf("node-%09d", i), ParentNodeID: fmt.Sprintf("node-%09d", i-i%10),
		Attempt: 1, CreatedAt: created, RecordedAt: created.Add(42 * time.Millisecond), Seq: uint32(i % 3),
		StartTime: created.Add(time.Millisecond), EndTime: created.Add(41 * time.Millisecond), Duration: 40,
		Kwargs: kw, Result: json.RawMessage(`{"ok":true}`), Host: "host-a",
		Logs: json.RawMessage(`[{"time":"2025-03-14 09:26:53","level":"info","message":"sent"}]`),
	}
	if i%5 == 0 {
		r.Status, r.Stage = logstore.StatusFail, "retryScheduled"
		r.Error = &logstore.RowError{Code: "js_error", Message: "TypeError: x is undefined", Stack: "at handle (events/OrderPlaced/index.js:12:3)"}
	}
	return r
}

func testRows(from, n int) []logstore.Row {
	rows := make([]logstore.Row, n)
	for i := range rows {
		rows[i] = testRow(from + i)
	}
	return rows
}

func TestTestRowSize(t *testing.T) {
	t.Parallel()
	r := testRow(123)
	require.GreaterOrEqual(t, len(r.Kwargs), 250)
	require.LessOrEqual(t, len(r.Kwargs), 350)
	require.NoError(t, r.Validate())
}
