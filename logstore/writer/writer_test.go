package writer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/logstore"
)

// logBuffer collects a writer's log lines so tests can check what it told the operator.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

type bundle struct {
	w     *Writer
	mem   *memStore
	fault *faultStore
	dir   string
	logs  *logBuffer
	opts  Options
}

// setup returns a started writer on a fresh spool in front of a fault-injecting memStore,
// stopped at the end of the test. Zero option fields get test-friendly values.
func setup(t *testing.T, opts Options) *bundle {
	t.Helper()
	b := &bundle{mem: newMemStore(), logs: &logBuffer{}}
	b.fault = newFaultStore(b.mem)
	if opts.SpoolDir == "" {
		opts.SpoolDir = t.TempDir()
	}
	if opts.BackoffMin == 0 {
		opts.BackoffMin, opts.BackoffMax = time.Millisecond, 20*time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(b.logs, nil))
	}
	b.dir, b.opts = opts.SpoolDir, opts
	b.w = b.start(t, b.fault)
	return b
}

// start starts another writer on the bundle's spool, in front of store.
func (b *bundle) start(t *testing.T, store logstore.Store) *Writer {
	t.Helper()
	w, err := New(store, b.opts)
	require.NoError(t, err)
	require.NoError(t, w.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_ = w.Stop(ctx)
	})
	return w
}

func segName(id uint64) string { return fmt.Sprintf("%s%016d%s", segPrefix, id, segSuffix) }

func segments(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, segPrefix+"*"+segSuffix))
	require.NoError(t, err)
	sort.Strings(m)
	return m
}

func ids(rows []logstore.Row) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.ID
	}
	return out
}

// requireExactlyOnce checks the store holds exactly the rows want, unchanged, and that no
// successful insert carried any of them twice.
func requireExactlyOnce(t *testing.T, m *memStore, want []logstore.Row) {
	t.Helper()
	rows, sent, _ := m.snapshot()
	require.Len(t, rows, len(want))
	for _, r := range want {
		got, ok := rows[r.ID]
		require.True(t, ok, "row %s lost", r.ID)
		require.Equal(t, r.ID, got.ID)
		require.Equal(t, r.Kwargs, got.Kwargs, "row %s changed", r.ID)
		require.True(t, r.CreatedAt.Equal(got.CreatedAt))
		require.Equal(t, 1, sent[r.ID], "row %s inserted %d times", r.ID, sent[r.ID])
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	o, err := Options{SpoolDir: "x"}.WithDefaults()
	require.NoError(t, err)
	require.Equal(t, DefaultBatchRows, o.BatchRows)
	require.Equal(t, time.Second, o.FlushInterval)
	require.Equal(t, int64(1<<30), o.MaxSpoolBytes)
	require.Equal(t, int64(64<<20), o.SegmentBytes)
	require.Equal(t, DefaultBackoffMin, o.BackoffMin)
	require.Equal(t, DefaultBackoffMax, o.BackoffMax)
	require.NotNil(t, o.Logger)

	o, err = Options{SpoolDir: "x", MaxSpoolBytes: 1 << 20}.WithDefaults()
	require.NoError(t, err)
	require.Equal(t, int64(64<<10), o.SegmentBytes, "segments scale with the spool")

	for _, tc := range []struct {
		opts  Options
		field string
	}{
		{Options{}, "SpoolDir"},
		{Options{SpoolDir: "x", BatchRows: -1}, "BatchRows"},
		{Options{SpoolDir: "x", FlushInterval: -time.Second}, "FlushInterval"},
		{Options{SpoolDir: "x", MaxSpoolBytes: -1}, "MaxSpoolBytes"},
		{Options{SpoolDir: "x", SegmentBytes: -1}, "SegmentBytes"},
		{Options{SpoolDir: "x", BackoffMin: time.Second, BackoffMax: time.Millisecond}, "BackoffMax"},
		{Options{SpoolDir: "x", InsertTimeout: -1}, "InsertTimeout"},
	} {
		_, err := New(newMemStore(), tc.opts)
		require.ErrorIs(t, err, ErrInvalidOptions)
		require.Contains(t, err.Error(), tc.field)
	}
	_, err = New(nil, Options{SpoolDir: "x"})
	require.ErrorIs(t, err, ErrInvalidOptions)
}

func TestBatchesBySize(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{BatchRows: 100, FlushInterval: time.Hour})
	ctx := context.Background()
	rows := testRows(0, 250)
	require.NoError(t, b.w.Write(ctx, rows...))
	// Two full batches go at once; the last 50 wait for the (hour-long) interval or a Flush.
	b.mem.waitCount(t, 200, 10*time.Second)
	_, _, sizes := b.mem.snapshot()
	require.Equal(t, []int{100, 100}, sizes)

	require.NoError(t, b.w.Flush(ctx))
	_, _, sizes = b.mem.snapshot()
	require.Equal(t, []int{100, 100, 50}, sizes)
	requireExactlyOnce(t, b.mem, rows)
	st := b.w.Stats()
	require.Equal(t, int64(250), st.Inserted)
	require.Equal(t, int64(3), st.Batches)
	require.Zero(t, st.SpooledRows)
	require.Zero(t, st.SpooledBytes)
}

func TestBatchesOfSingleRowWritesAreFull(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{BatchRows: 64, FlushInterval: time.Hour})
	ctx := context.Background()
	rows := testRows(0, 64*4)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := g; i < len(rows); i += 8 {
				require.NoError(t, b.w.Write(ctx, rows[i]))
			}
		})
	}
	wg.Wait()
	b.mem.waitCount(t, len(rows), 10*time.Second)
	_, _, sizes := b.mem.snapshot()
	require.Equal(t, []int{64, 64, 64, 64}, sizes, "size-triggered batches are exactly BatchRows")
	requireExactlyOnce(t, b.mem, rows)
	st := b.w.Stats()
	require.Equal(t, int64(len(rows)), st.SyncedRows)
	require.LessOrEqual(t, st.Syncs, int64(len(rows)))
}

func TestBatchesByTime(t *testing.T) {
	t.Parallel()
	const interval = 80 * time.Millisecond
	b := setup(t, Options{BatchRows: 1_000_000, FlushInterval: interval})
	rows := testRows(0, 10)
	written := time.Now()
	require.NoError(t, b.w.Write(context.Background(), rows...))
	b.mem.waitCount(t, 10, 10*time.Second)
	require.GreaterOrEqual(t, time.Since(written), interval, "a small batch waits for the interval")
	_, _, sizes := b.mem.snapshot()
	require.Equal(t, []int{10}, sizes)

	// A second trickle goes in its own batch, again after the interval.
	require.NoError(t, b.w.Write(context.Background(), testRows(10, 3)...))
	b.mem.waitCount(t, 13, 10*time.Second)
	_, _, sizes = b.mem.snapshot()
	require.Equal(t, []int{10, 3}, sizes)
}

func TestOutageLosesNothingDuplicatesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{BatchRows: 200, FlushInterval: 5 * time.Millisecond})
	ctx := context.Background()
	b.fault.setDown(true)

	const writers, perWriter = 4, 600
	rows := testRows(0, writers*perWriter)
	half := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			mine := rows[g*perWriter : (g+1)*perWriter]
			for i := 0; i < len(mine); {
				n := min(1+i%17, len(mine)-i)
				require.NoError(t, b.w.Write(ctx, mine[i:i+n]...), "writes are accepted while the store is down")
				i += n
				if i >= perWriter/2 && g == 0 {
					once.Do(func() { close(half) })
				}
			}
		})
	}
	<-half
	b.fault.waitFailures(t, 3)
	st := b.w.Stats()
	require.True(t, st.Retrying)
	require.Contains(t, st.LastError, "connection refused")
	require.Positive(t, st.Retries)
	require.Positive(t, st.SpooledRows)
	require.Zero(t, b.mem.count(), "nothing reached the store while it was down")

	b.fault.setDown(false) // the outage ends while writes go on
	wg.Wait()
	require.NoError(t, b.w.Flush(ctx))
	requireExactlyOnce(t, b.mem, rows)
	st = b.w.Stats()
	require.False(t, st.Retrying)
	require.Equal(t, int64(len(rows)), st.Inserted)
	require.Zero(t, st.SpooledRows)
}

func TestRetryAfterSecretSuccessDuplicatesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{BatchRows: 1000, FlushInterval: time.Hour})
	ctx := context.Background()
	rows := testRows(0, 50)
	b.fault.failSecretly(1) // the first insert is stored, but its caller hears a timeout
	require.NoError(t, b.w.Write(ctx, rows...))
	require.NoError(t, b.w.Flush(ctx))

	stored, sent, sizes := b.mem.snapshot()
	require.Equal(t, []int{50, 50}, sizes, "the retry resent the very same batch")
	require.Len(t, stored, 50, "the store's idempotency on Row.ID shows each row once")
	for _, r := range rows {
		require.Equal(t, 2, sent[r.ID])
		got := stored[r.ID]
		require.Equal(t, r.Kwargs, got.Kwargs)
		require.Equal(t, r.Seq, got.Seq)
		require.True(t, r.RecordedAt.Equal(got.RecordedAt))
	}
	require.Equal(t, int64(1), b.w.Stats().Retries)
	require.Equal(t, int64(50), b.w.Stats().Inserted)
}

func TestBackPressure(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	b := setup(t, Options{BatchRows: 50, FlushInterval: time.Millisecond, MaxSpoolBytes: limit, SegmentBytes: 8 << 10})
	ctx := context.Background()
	b.fault.setDown(true)

	// Fill the spool while the store is down: Writes are acknowledged until the limit.
	var acked []logstore.Row
	blocked := make(chan error, 1)
	next := 0
	for {
		row := testRow(next)
		next++
		st := b.w.Stats()
		size := int64(len(encodeRecords(nil, []logstore.Row{row}, 1)))
		if st.SpooledBytes+size > limit { // this row does not fit: write it in the background
			go func() { blocked <- b.w.Write(ctx, row) }()
			acked = append(acked, row)
			break
		}
		require.NoError(t, b.w.Write(ctx, row))
		acked = append(acked, row)
	}
	require.Eventually(t, func() bool { return b.w.Stats().BlockedWrites == 1 }, 10*time.Second, time.Millisecond,
		"a Write past MaxSpoolBytes blocks")
	st := b.w.Stats()
	require.LessOrEqual(t, st.SpooledBytes, int64(limit), "memory and disk stay bounded")

	// A blocked Write honours its context.
	cctx, cancel := context.WithCancel(ctx)
	cancelled := make(chan error, 1)
	go func() { cancelled <- b.w.Write(cctx, testRow(1_000_000)) }()
	require.Eventually(t, func() bool { return b.w.Stats().BlockedWrites == 2 }, 10*time.Second, time.Millisecond)
	cancel()
	err := <-cancelled
	require.ErrorIs(t, err, context.Canceled)
	require.Contains(t, err.Error(), "spool space")

	// The store comes back: inserts free space and the blocked Write goes through.
	select {
	case err := <-blocked:
		t.Fatalf("Write returned %v while the spool was full", err)
	default:
	}
	b.fault.setDown(false)
	require.NoError(t, <-blocked)
	require.NoError(t, b.w.Flush(ctx))
	requireExactlyOnce(t, b.mem, acked)
	require.Len(t, segments(t, b.dir), 1, "inserted segments are deleted")
}

func TestWriteRefusesInvalidRows(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{FlushInterval: time.Millisecond})
	ctx := context.Background()
	rows := testRows(0, 3)
	rows[1].Status = "done"
	err := b.w.Write(ctx, rows...)
	require.ErrorIs(t, err, logstore.ErrInvalidRow)
	require.Contains(t, err.Error(), "row-000000001")
	require.Contains(t, err.Error(), "status")
	require.Zero(t, b.w.Stats().SpooledRows, "nothing of a refused call is spooled")

	good := testRows(10, 2)
	require.NoError(t, b.w.Write(ctx, good...))
	require.NoError(t, b.w.Flush(ctx))
	requireExactlyOnce(t, b.mem, good)
	require.NoError(t, b.w.Write(ctx), "an empty write is a no-op")
}

// rejectingStore refuses one row ID as invalid, as a backend with stricter limits might.
type rejectingStore struct {
	logstore.Store
	bad string
}

func (r rejectingStore) Insert(ctx context.Context, rows []logstore.Row) error {
	for _, row := range rows {
		if row.ID == r.bad {
			return fmt.Errorf("strict: insert: %w: row %s: kwargs too large", logstore.ErrInvalidRow, row.ID)
		}
	}
	return r.Store.Insert(ctx, rows)
}

func TestRowTheStoreRefusesIsSetAside(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{BatchRows: 64, FlushInterval: time.Hour})
	b.w.Stop(context.Background())
	rows := testRows(0, 64)
	w := b.start(t, rejectingStore{Store: b.mem, bad: rows[37].ID})
	ctx := context.Background()
	require.NoError(t, w.Write(ctx, rows...))
	require.NoError(t, w.Flush(ctx))

	stored, _, _ := b.mem.snapshot()
	require.Len(t, stored, 63, "the other rows of the batch went in")
	require.NotContains(t, stored, rows[37].ID)
	require.Equal(t, int64(1), w.Stats().Rejected)
	data, err := os.ReadFile(filepath.Join(b.dir, rejectedName))
	require.NoError(t, err)
	var rec struct {
		Error string       `json:"error"`
		Row   logstore.Row `json:"row"`
	}
	require.NoError(t, json.Unmarshal(data, &rec))
	require.Equal(t, rows[37].ID, rec.Row.ID)
	require.Contains(t, rec.Error, "kwargs too large")
	require.Contains(t, b.logs.String(), "refused a row as invalid")
}

func TestStartStopLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	w, err := New(newMemStore(), Options{SpoolDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	require.ErrorIs(t, w.Write(ctx, testRow(1)), ErrNotStarted)
	require.ErrorIs(t, w.Flush(ctx), ErrNotStarted)
	require.Zero(t, w.Stats().Inserted, "Stats is safe before Start")

	require.NoError(t, w.Start(ctx))
	require.NoError(t, w.Start(ctx), "Start twice is a no-op")
	require.NoError(t, w.Write(ctx, testRow(1)))
	require.NoError(t, w.Stop(ctx))
	require.NoError(t, w.Stop(ctx), "Stop twice is safe")
	require.ErrorIs(t, w.Write(ctx, testRow(2)), ErrStopped)
	require.ErrorIs(t, w.Start(ctx), ErrStopped)
	require.NoError(t, w.Flush(ctx), "everything was inserted by Stop")

	// A clean stop leaves no segment behind.
	require.Empty(t, segments(t, dir))

	never, err := New(newMemStore(), Options{SpoolDir: t.TempDir()})
	require.NoError(t, err)
	require.NoError(t, never.Stop(ctx), "Stop without Start")
	require.NoError(t, never.Stop(ctx))
}

func TestConcurrentStopAndWrite(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{BatchRows: 100, FlushInterval: time.Millisecond})
	ctx := context.Background()
	var mu sync.Mutex
	var acked []logstore.Row
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				r := testRow(g*100_000 + i)
				if err := b.w.Write(ctx, r); err != nil {
					require.ErrorIs(t, err, ErrStopped)
					return
				}
				mu.Lock()
				acked = append(acked, r)
				mu.Unlock()
			}
		})
	}
	b.mem.waitCount(t, 300, 10*time.Second)
	var stops sync.WaitGroup
	for range 2 {
		stops.Go(func() { require.NoError(t, b.w.Stop(ctx)) })
	}
	stops.Wait()
	wg.Wait()
	requireExactlyOnce(t, b.mem, acked)
}

func TestStopThatCannotDrainKeepsRowsForNextStart(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{BatchRows: 40, FlushInterval: time.Millisecond, SegmentBytes: 8 << 10})
	ctx := context.Background()
	b.fault.setDown(true)
	rows := testRows(0, 100)
	require.NoError(t, b.w.Write(ctx, rows...))
	b.fault.waitFailures(t, 1)

	sctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	err := b.w.Stop(sctx)
	require.ErrorIs(t, err, ErrNotDrained)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Contains(t, err.Error(), "100 rows stay in")
	require.Contains(t, err.Error(), "connection refused")
	require.ErrorIs(t, b.w.Stop(ctx), ErrNotDrained, "a second Stop reports the same")
	require.NotEmpty(t, segments(t, b.dir))

	w := b.start(t, b.mem)
	require.Equal(t, int64(100), w.Stats().Replayed)
	require.NoError(t, w.Flush(ctx))
	requireExactlyOnce(t, b.mem, rows)
	require.NoError(t, w.Stop(ctx))
	require.Empty(t, segments(t, b.dir))
}

func TestSpoolIsPrivateToOneWriter(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	other, err := New(newMemStore(), Options{SpoolDir: b.dir})
	require.NoError(t, err)
	err = other.Start(context.Background())
	require.ErrorIs(t, err, ErrSpoolLocked)
	require.Contains(t, err.Error(), "own SpoolDir")
}

func TestSegmentsAreDeletedOnlyOnceInserted(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{BatchRows: 100, FlushInterval: time.Millisecond, SegmentBytes: 16 << 10})
	ctx := context.Background()
	b.fault.setDown(true)
	rows := testRows(0, 300)
	for i := 0; i < len(rows); i += 10 {
		require.NoError(t, b.w.Write(ctx, rows[i:i+10]...))
	}
	b.fault.waitFailures(t, 2)
	segs := segments(t, b.dir)
	require.Greater(t, len(segs), 5, "the spool rotated into several segments")
	require.Equal(t, filepath.Base(segs[0]), segName(1), "none was deleted while the store was down")

	b.fault.setDown(false)
	require.NoError(t, b.w.Flush(ctx))
	requireExactlyOnce(t, b.mem, rows)
	// Flush promises the rows are in the store; the inserted segments are deleted just after,
	// by the spool's own tidying.
	require.Eventually(t, func() bool { return len(segments(t, b.dir)) == 1 }, 10*time.Second, 5*time.Millisecond,
		"only the active segment remains")
}

// crashAndReopen simulates a process killed after Write returned (see Writer.crash; the real
// SIGKILL test is in crash_test.go).
func crashAndReopen(t *testing.T, b *bundle) {
	t.Helper()
	b.w.crash()
}

func TestTornTailIsCutNeverMisread(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		tear func(t *testing.T, path string, lastRecord int64)
		rows int // rows delivered after the restart, of 10 records of 10
		torn bool
	}{
		{"half a header", func(t *testing.T, path string, _ int64) { appendFile(t, path, []byte{0x40, 0}) }, 100, true},
		{"header without payload", func(t *testing.T, path string, _ int64) {
			appendFile(t, path, []byte{0x40, 0, 0, 0, 1, 2, 3, 4, 9, 9})
		}, 100, true},
		// The end of a preallocated segment, or a tail whose blocks were allocated but never
		// written: nothing to warn about, nothing misread.
		{"zero-filled tail", func(t *testing.T, path string, _ int64) { appendFile(t, path, make([]byte, 4096)) }, 100, false},
		{"zeros, then garbage", func(t *testing.T, path string, _ int64) {
			appendFile(t, path, append(make([]byte, 4096), 1))
		}, 100, true},
		{"last record damaged", func(t *testing.T, path string, last int64) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			require.NoError(t, err)
			defer f.Close()
			st, err := f.Stat()
			require.NoError(t, err)
			_, err = f.WriteAt([]byte{0xff}, st.Size()-3)
			require.NoError(t, err)
		}, 90, true},
		{"last record cut short", func(t *testing.T, path string, last int64) {
			st, err := os.Stat(path)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(path, st.Size()-5))
		}, 90, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, Options{BatchRows: 1000, FlushInterval: time.Hour})
			ctx := context.Background()
			rows := testRows(0, 100)
			for i := 0; i < 100; i += 10 {
				require.NoError(t, b.w.Write(ctx, rows[i:i+10]...))
			}
			crashAndReopen(t, b)
			segs := segments(t, b.dir)
			require.Len(t, segs, 1)
			before, err := os.Stat(segs[0])
			require.NoError(t, err)
			tc.tear(t, segs[0], 0)

			// Recovery alone: the tail is cut off the file.
			sp, err := openSpool(b.dir, b.opts.SegmentBytes, 1<<30, slogTo(b.logs))
			require.NoError(t, err)
			after, err := os.Stat(segs[0])
			require.NoError(t, err)
			require.LessOrEqual(t, after.Size(), before.Size())
			sp.closeAppends()
			require.Equal(t, int64(tc.rows), sp.close())

			w := b.start(t, b.mem)
			require.NoError(t, w.Flush(ctx))
			requireExactlyOnce(t, b.mem, rows[:tc.rows])
			if tc.torn {
				require.Contains(t, b.logs.String(), "cut a torn tail")
			} else {
				require.NotContains(t, b.logs.String(), "torn")
			}

			// New appends go after the cut and are read normally.
			more := testRows(100, 5)
			require.NoError(t, w.Write(ctx, more...))
			require.NoError(t, w.Flush(ctx))
			require.Equal(t, tc.rows+5, b.mem.count())
		})
	}
}

func appendFile(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.Write(data)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func TestRecoveryAfterCrashResumesFromCheckpoint(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{BatchRows: 50, FlushInterval: time.Hour, SegmentBytes: 1 << 20})
	ctx := context.Background()
	first := testRows(0, 100)
	require.NoError(t, b.w.Write(ctx, first...))
	require.NoError(t, b.w.Flush(ctx)) // two full batches inserted and checkpointed
	b.fault.setDown(true)
	second := testRows(100, 30)
	require.NoError(t, b.w.Write(ctx, second...))
	crashAndReopen(t, b)

	w := b.start(t, b.mem)
	require.Equal(t, int64(30), w.Stats().Replayed, "rows before the checkpoint are not replayed")
	require.NoError(t, w.Flush(ctx))
	requireExactlyOnce(t, b.mem, append(first, second...))
}

func TestRecoveryWithoutCheckpointReplaysHarmlessly(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{BatchRows: 50, FlushInterval: time.Hour})
	ctx := context.Background()
	rows := testRows(0, 100)
	require.NoError(t, b.w.Write(ctx, rows...))
	require.NoError(t, b.w.Flush(ctx))
	crashAndReopen(t, b)
	// A checkpoint lost or damaged: every segment is replayed; the store shows each row once.
	require.NoError(t, os.WriteFile(filepath.Join(b.dir, "checkpoint"), []byte("garbage"), 0o640))

	w := b.start(t, b.mem)
	require.NoError(t, w.Flush(ctx))
	stored, sent, _ := b.mem.snapshot()
	require.Len(t, stored, 100)
	require.Equal(t, 2, sent[rows[0].ID], "replayed: sent twice, stored once")
	require.Contains(t, b.logs.String(), "checkpoint is damaged")
}

func TestForeignFileInSpoolIsSetAside(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	crashAndReopen(t, b)
	bad := filepath.Join(b.dir, segName(7))
	require.NoError(t, os.WriteFile(bad, []byte("not a spool segment at all"), 0o640))
	empty := filepath.Join(b.dir, segName(8))
	require.NoError(t, os.WriteFile(empty, []byte(segMagic[:3]), 0o640))

	w := b.start(t, b.mem)
	require.NoError(t, w.Write(context.Background(), testRow(1)))
	require.NoError(t, w.Flush(context.Background()))
	require.Equal(t, 1, b.mem.count())
	require.FileExists(t, bad+".corrupt")
	require.NoFileExists(t, empty, "a segment whose header never landed held nothing")
	require.True(t, strings.Contains(b.logs.String(), "not a segment"))
}

func TestRecycledSegmentsAreNeverMisread(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{BatchRows: 50, FlushInterval: time.Millisecond, SegmentBytes: 8 << 10})
	ctx := context.Background()
	first := testRows(0, 600)
	for i := 0; i < len(first); i += 5 {
		require.NoError(t, b.w.Write(ctx, first[i:i+5]...))
	}
	require.NoError(t, b.w.Flush(ctx))
	// The store goes down; more rows land in segments that reuse the files of inserted ones,
	// stale records and all. Then the process dies.
	b.fault.setDown(true)
	second := testRows(1000, 300)
	for i := 0; i < len(second); i += 5 {
		require.NoError(t, b.w.Write(ctx, second[i:i+5]...))
	}
	require.Positive(t, b.w.sp.l.Stats().Reused, "segment files were recycled")
	crashAndReopen(t, b)

	w := b.start(t, b.mem)
	require.Equal(t, int64(len(second)), w.Stats().Replayed, "no stale record was taken for a spooled one")
	require.NoError(t, w.Flush(ctx))
	requireExactlyOnce(t, b.mem, append(first, second...))
	require.NotContains(t, b.logs.String(), "torn")
}
