package writer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-run/trellis/host/embedded/appendlog"
	"github.com/trellis-run/trellis/logstore"
)

// Writer batches rows into a Store through a durable spool. Create it with New, then Start;
// Write acknowledges rows once they are fsynced; the writer inserts them in batches, one
// insert in flight, retrying while the store fails. Safe for concurrent use.
type Writer struct {
	store logstore.Store
	opts  Options

	mu      sync.Mutex
	state   int // stateNew, stateStarted, stateStopped
	sp      *spool
	stopped chan struct{} // closed when Stop begins: the flusher drains
	done    chan struct{} // closed when Stop has finished
	stopErr error
	cancel  context.CancelFunc // ends inserts and backoff when Stop's context ends
	runDone chan struct{}      // closed when the flusher returns
	flushCh chan struct{}

	started  atomic.Bool
	inFlight atomic.Int64
	inserted atomic.Int64
	batches  atomic.Int64
	retries  atomic.Int64
	rejected atomic.Int64
	retrying atomic.Bool
	errMu    sync.Mutex
	lastErr  error
	lastAt   time.Time
	rejectMu sync.Mutex
	// private marks a spool of this process alone (StartShared): Stop removes it once drained.
	private bool
}

const (
	stateNew = iota
	stateStarted
	stateStopped
)

// New checks the options and returns a Writer in front of store. Nothing touches the disk until
// Start. The caller keeps ownership of store: Stop does not close it.
func New(store logstore.Store, opts Options) (*Writer, error) {
	if store == nil {
		return nil, fmt.Errorf("%w: store is nil; pass an open logstore.Store", ErrInvalidOptions)
	}
	o, err := opts.WithDefaults()
	if err != nil {
		return nil, err
	}
	return &Writer{store: store, opts: o, flushCh: make(chan struct{}, 1)}, nil
}

// Start locks SpoolDir, replays rows a previous run left there (a crash, or a Stop that could
// not drain) and starts inserting. ctx bounds only the start; Stop ends the writer. Calling
// Start again is a no-op; after Stop it fails with ErrStopped.
func (w *Writer) Start(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch w.state {
	case stateStarted:
		return nil
	case stateStopped:
		return fmt.Errorf("writer: start: %w; create a new Writer", ErrStopped)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("writer: start: %w", err)
	}
	sp, err := openSpool(w.opts.SpoolDir, w.opts.SegmentBytes, w.opts.MaxSpoolBytes, w.opts.Logger)
	if err != nil {
		return fmt.Errorf("writer: start: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w.sp, w.cancel = sp, cancel
	w.stopped, w.done, w.runDone = make(chan struct{}), make(chan struct{}), make(chan struct{})
	w.state = stateStarted
	w.started.Store(true)
	batches := make(chan batch)
	var wg sync.WaitGroup
	wg.Go(func() { w.runReader(runCtx, batches) })
	wg.Go(func() { w.runInserter(runCtx, batches) })
	go func() { wg.Wait(); close(w.runDone) }()
	return nil
}

// Stop refuses new Writes, then inserts what is spooled, retrying while the store fails, until
// the spool is empty or ctx ends. It returns nil when everything was inserted, and an error
// wrapping ErrNotDrained otherwise: the rows left stay in the spool for the next Start, nothing
// is lost. Safe to call twice (the second call returns the first one's result).
func (w *Writer) Stop(ctx context.Context) error {
	w.mu.Lock()
	switch w.state {
	case stateNew:
		w.state = stateStopped
		w.mu.Unlock()
		return nil
	case stateStopped:
		done := w.done
		w.mu.Unlock()
		if done == nil {
			return nil
		}
		<-done
		return w.stopErr
	}
	w.state = stateStopped
	w.mu.Unlock()

	w.sp.closeAppends()
	close(w.stopped)
	select {
	case <-w.runDone:
	case <-ctx.Done():
		w.cancel()
		<-w.runDone
	}
	w.cancel()
	left := w.sp.close()
	if left > 0 {
		cause := context.Cause(ctx)
		if cause == nil {
			cause = errors.New("the writer could not read the spool")
		}
		w.stopErr = fmt.Errorf("writer: stop: %w: %d rows stay in %s and are inserted by the next Start (last store error: %s): %w",
			ErrNotDrained, left, w.opts.SpoolDir, w.lastErrorText(), cause)
	} else if w.private {
		_ = os.RemoveAll(w.opts.SpoolDir)
	}
	close(w.done)
	return w.stopErr
}

// Write validates rows and returns once they are durably in the spool (fsynced; concurrent
// Writes share one fsync). A row that fails Row.Validate is refused here, with the error, and
// nothing of that call is spooled, so a bad row never reaches a batch. When the spool is full,
// Write waits for inserts to free space (back-pressure) or for ctx to end.
//
// An error other than a validation error means the rows were not acknowledged: some of them
// may still be stored, so write them again with the same IDs, which the store ignores.
func (w *Writer) Write(ctx context.Context, rows ...logstore.Row) error {
	if !w.started.Load() {
		return fmt.Errorf("writer: write: %w", ErrNotStarted)
	}
	if len(rows) == 0 {
		return nil
	}
	for i := range rows {
		if err := rows[i].Validate(); err != nil {
			return fmt.Errorf("writer: write: %w", err)
		}
	}
	buf := encodeRecords(getBuf(), rows, w.opts.BatchRows)
	defer putBuf(buf)
	groups := make([]*appendlog.Commit, 0, 1)
	// Large writes are admitted a record at a time, so back-pressure can let them through as
	// space frees up instead of waiting for room for all of it at once.
	for off := 0; off < len(buf); {
		end := off
		nrows := 0
		for end < len(buf) && (end == off || end-off < recordBytes) {
			nrows += int(uint32le(buf[end+appendlog.HeaderBytes+1:]))
			end += appendlog.FrameLen(buf[end:])
		}
		g, err := w.sp.append(ctx.Done(), buf[off:end], nrows)
		if errors.Is(err, ErrStopped) {
			return fmt.Errorf("writer: write: %w", err)
		}
		if err != nil {
			if errors.Is(err, errDone) {
				err = context.Cause(ctx)
			}
			return fmt.Errorf("writer: write: waiting for spool space (%d bytes spooled, limit %d): %w",
				w.Stats().SpooledBytes, w.opts.MaxSpoolBytes, err)
		}
		if len(groups) == 0 || groups[len(groups)-1] != g {
			groups = append(groups, g)
		}
		off = end
	}
	for _, g := range groups {
		select {
		case <-g.Done():
			if err := g.Err(); err != nil {
				return fmt.Errorf("writer: write: %w: %w", ErrSpool, err)
			}
		case <-ctx.Done():
			return fmt.Errorf("writer: write: waiting for fsync: %w", context.Cause(ctx))
		}
	}
	return nil
}

// Flush returns nil once every row acknowledged before the call is in the store. It sends a
// batch at once rather than waiting for BatchRows or FlushInterval, and waits through retries;
// it returns early when ctx ends or the writer stops before it is done.
func (w *Writer) Flush(ctx context.Context) error {
	w.mu.Lock()
	state, sp, runDone := w.state, w.sp, w.runDone
	w.mu.Unlock()
	switch state {
	case stateNew:
		return fmt.Errorf("writer: flush: %w", ErrNotStarted)
	case stateStopped:
		if sp == nil {
			return fmt.Errorf("writer: flush: %w", ErrStopped)
		}
	}
	target := sp.markFlush()
	select {
	case w.flushCh <- struct{}{}:
	default:
	}
	for {
		ok, changed := sp.ackedPast(target)
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-runDone:
			if ok, _ := sp.ackedPast(target); ok {
				return nil
			}
			return fmt.Errorf("writer: flush: %w before every row was inserted (last store error: %s)", ErrStopped, w.lastErrorText())
		case <-ctx.Done():
			return fmt.Errorf("writer: flush: %d rows not inserted yet (last store error: %s): %w",
				w.Stats().SpooledRows, w.lastErrorText(), context.Cause(ctx))
		}
	}
}

// Stats is a snapshot of the writer for /api/health and metrics.
type Stats struct {
	// SpooledRows and SpooledBytes are rows accepted by Write and not yet inserted.
	SpooledRows  int64 `json:"spooledRows"`
	SpooledBytes int64 `json:"spooledBytes"`
	// InFlightRows are the rows of the insert under way or being retried.
	InFlightRows int64 `json:"inFlightRows"`
	// BlockedWrites are Write calls waiting for spool space (back-pressure) now.
	BlockedWrites int `json:"blockedWrites"`
	// Inserted rows and Batches (successful inserts) since Start; Retries counts failed
	// inserts tried again.
	Inserted int64 `json:"inserted"`
	Batches  int64 `json:"batches"`
	Retries  int64 `json:"retries"`
	// Retrying is true while the current batch keeps failing: the store is down or refusing.
	Retrying bool `json:"retrying"`
	// Syncs counts fsyncs of the spool and SyncedRows the rows they made durable: many rows
	// per fsync is group commit at work.
	Syncs      int64 `json:"syncs"`
	SyncedRows int64 `json:"syncedRows"`
	// Replayed rows were found in the spool at Start, left by a previous run.
	Replayed int64 `json:"replayed"`
	// Rejected rows were refused by the store as invalid and moved to rejected.jsonl in the
	// spool directory; Corrupt counts spool records lost to a failing disk. Both should be 0.
	Rejected int64 `json:"rejected"`
	Corrupt  int64 `json:"corrupt"`
	// SharedEntries and TookOver are those of a buffer the cluster shares (logstore/redisspool):
	// entries (group commits of rows) waiting in it at the last look, and entries this process
	// took over from a drainer that died. Both 0 for the file spool.
	SharedEntries int64 `json:"sharedEntries,omitempty"`
	TookOver      int64 `json:"tookOver,omitempty"`
	// LastError is the last insert or spool error, and when it happened.
	LastError   string    `json:"lastError,omitempty"`
	LastErrorAt time.Time `json:"lastErrorAt,omitzero"`
}

// Stats returns a snapshot; safe at any time, also before Start and after Stop.
func (w *Writer) Stats() Stats {
	st := Stats{
		InFlightRows: w.inFlight.Load(),
		Inserted:     w.inserted.Load(),
		Batches:      w.batches.Load(),
		Retries:      w.retries.Load(),
		Retrying:     w.retrying.Load(),
		Rejected:     w.rejected.Load(),
	}
	w.mu.Lock()
	sp := w.sp
	w.mu.Unlock()
	var spErr error
	var spAt time.Time
	if sp != nil {
		sp.mu.Lock()
		st.SpooledRows, st.SpooledBytes = sp.pendingR, sp.pendingB
		st.BlockedWrites = sp.blocked
		st.Replayed, st.Corrupt = sp.replayed, sp.corrupt
		st.Syncs, st.SyncedRows = sp.syncs, sp.synced
		spErr, spAt = sp.syncErr, sp.syncErrAt
		sp.mu.Unlock()
	}
	w.errMu.Lock()
	err, at := w.lastErr, w.lastAt
	w.errMu.Unlock()
	if spErr != nil && spAt.After(at) {
		err, at = spErr, spAt
	}
	if err != nil {
		st.LastError, st.LastErrorAt = err.Error(), at
	}
	return st
}

// lastErrorText is the last insert or spool error for messages, or "none".
func (w *Writer) lastErrorText() string {
	if st := w.Stats(); st.LastError != "" {
		return st.LastError
	}
	return "none"
}

func (w *Writer) setError(err error) {
	w.errMu.Lock()
	w.lastErr, w.lastAt = err, time.Now()
	w.errMu.Unlock()
}

// runReader cuts batches: as soon as BatchRows rows are spooled, or when the oldest spooled
// row has waited FlushInterval, or at once for Flush and Stop. It reads the next batch while
// the inserter sends the current one, and hands it over when the inserter is free.
func (w *Writer) runReader(ctx context.Context, batches chan<- batch) {
	defer close(batches)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for ctx.Err() == nil {
		rows, bytes, since, more := w.sp.unread()
		draining := isClosed(w.stopped)
		if bytes == 0 {
			w.sp.tidy()
			if draining {
				return
			}
			select {
			case <-more:
			case <-w.flushCh:
			case <-w.stopped:
			case <-ctx.Done():
			}
			continue
		}
		if rows < int64(w.opts.BatchRows) && !draining && !w.sp.flushWanted() {
			if wait := time.Until(since.Add(w.opts.FlushInterval)); wait > 0 {
				timer.Reset(wait)
				select {
				case <-more:
				case <-timer.C:
				case <-w.flushCh:
				case <-w.stopped:
				case <-ctx.Done():
				}
				timer.Stop()
				continue
			}
		}
		b, err := w.sp.readBatch(w.opts.BatchRows)
		if err != nil {
			w.setError(err)
			w.opts.Logger.Error("writer: cannot read the spool; retrying", "err", err)
			if !w.sleep(ctx, w.backoff(0)) {
				return
			}
			continue
		}
		select {
		case batches <- b:
		case <-ctx.Done():
			return
		}
	}
}

// runInserter inserts batches in order, one at a time, and acks each once the store has it.
func (w *Writer) runInserter(ctx context.Context, batches <-chan batch) {
	for b := range batches {
		if len(b.rows) > 0 && !w.insert(ctx, b.rows) {
			return
		}
		w.sp.ack(b)
	}
}

// insert sends one batch until the store takes it or ctx ends (then it reports false and the
// rows stay spooled). Every retry sends the same rows, with the same IDs.
func (w *Writer) insert(ctx context.Context, rows []logstore.Row) bool {
	w.inFlight.Store(int64(len(rows)))
	defer w.inFlight.Store(0)
	for attempt := 0; ; attempt++ {
		ictx, cancel := context.WithTimeout(ctx, w.opts.InsertTimeout)
		err := w.insertRows(ictx, rows)
		cancel()
		if err == nil {
			if attempt > 0 {
				w.opts.Logger.Info("writer: store accepts inserts again", "rows", len(rows), "attempts", attempt+1)
			}
			w.retrying.Store(false)
			w.inserted.Add(int64(len(rows)))
			w.batches.Add(1)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		w.retries.Add(1)
		w.retrying.Store(true)
		w.setError(err)
		d := w.backoff(attempt)
		w.opts.Logger.Warn("writer: insert failed; retrying the same batch", "rows", len(rows), "attempt", attempt+1, "retryIn", d, "err", err)
		if !w.sleep(ctx, d) {
			return false
		}
	}
}

// insertRows inserts rows; when the store refuses the batch as invalid (which Write's own
// validation should make impossible) it splits the batch to find the rows at fault and sets
// them aside in rejected.jsonl, so one bad row cannot block the log for ever.
func (w *Writer) insertRows(ctx context.Context, rows []logstore.Row) error {
	err := w.store.Insert(ctx, rows)
	if err == nil || !errors.Is(err, logstore.ErrInvalidRow) || errors.Is(err, logstore.ErrUnavailable) {
		return err
	}
	if len(rows) == 1 {
		return w.reject(rows[0], err)
	}
	mid := len(rows) / 2
	if err := w.insertRows(ctx, rows[:mid]); err != nil {
		return err
	}
	return w.insertRows(ctx, rows[mid:])
}

// reject appends a row the store refused to rejected.jsonl, durably, before its segment may be
// deleted.
func (w *Writer) reject(row logstore.Row, cause error) error {
	line, err := json.Marshal(struct {
		Error string       `json:"error"`
		At    time.Time    `json:"at"`
		Row   logstore.Row `json:"row"`
	}{cause.Error(), time.Now().UTC(), row})
	if err != nil {
		return fmt.Errorf("writer: reject row %s: %w", row.ID, err)
	}
	w.rejectMu.Lock()
	defer w.rejectMu.Unlock()
	f, err := os.OpenFile(filepath.Join(w.opts.SpoolDir, rejectedName), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("%w: reject row %s: %v", ErrSpool, row.ID, err)
	}
	defer f.Close()
	if _, err := f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("%w: reject row %s: %v", ErrSpool, row.ID, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%w: reject row %s: %v", ErrSpool, row.ID, err)
	}
	w.rejected.Add(1)
	w.opts.Logger.Error("writer: the store refused a row as invalid; it is kept in the spool directory for inspection",
		"id", row.ID, "file", rejectedName, "err", cause)
	return nil
}

// backoff is the wait before retry attempt+1 (Backoff with the writer's bounds).
func (w *Writer) backoff(attempt int) time.Duration {
	return Backoff(w.opts.BackoffMin, w.opts.BackoffMax, attempt)
}

// Backoff is the wait before retry attempt+1 of a failed insert: doubling from lo, capped at hi,
// with jitter in [d/2, d) so many hosts recovering together do not retry in step. The log's
// buffers share it (logstore/redisspool too).
func Backoff(lo, hi time.Duration, attempt int) time.Duration {
	d := lo
	for i := 0; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

func (w *Writer) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func uint32le(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

var bufPool = sync.Pool{New: func() any { return new([]byte) }}

func getBuf() []byte { return (*bufPool.Get().(*[]byte))[:0] }

func putBuf(b []byte) {
	if cap(b) > 4<<20 {
		return
	}
	bufPool.Put(&b)
}
