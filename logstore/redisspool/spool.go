package redisspool

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/trellis-run/trellis/logstore"
	"github.com/trellis-run/trellis/logstore/writer"
)

// Spool buffers log rows in a Redis stream shared by the cluster and drains it into a store.
// Create it with New, then Start; Write acknowledges rows once Redis has them; Stop drains
// what this process can and leaves the rest to the other hosts (or the next start). Safe for
// concurrent use.
type Spool struct {
	rdb   redis.UniversalClient
	store logstore.Store
	opts  Options

	mu         sync.Mutex
	state      int
	queue      []*write
	lastID     string        // the newest entry this process added: what Flush waits for
	kick       chan struct{} // the committer has Writes to add
	flushCh    chan struct{} // the drainer should cut its batch now
	stopping   chan struct{} // closed when Stop begins
	commitDone chan struct{} // closed when the committer has added every queued Write
	drainDone  chan struct{}
	cancel     context.CancelFunc // ends retries once Stop's context ends
	done       chan struct{}
	stopErr    error

	full      atomic.Bool // the stream held more than MaxEntries entries at the last look
	entries   atomic.Int64
	inFlight  atomic.Int64
	inserted  atomic.Int64
	batches   atomic.Int64
	retries   atomic.Int64
	tookOver  atomic.Int64
	corrupt   atomic.Int64
	rejected  atomic.Int64
	retrying  atomic.Bool
	errMu     sync.Mutex
	lastErr   error
	lastErrAt time.Time
}

const (
	stateNew = iota
	stateStarted
	stateStopped
)

// write is one Write's rows waiting for the XADD that carries them.
type write struct {
	payload []byte
	done    chan error
	at      time.Time // when it was queued
}

// New checks the options; nothing touches Redis until Start. The caller owns rdb and store.
func New(rdb redis.UniversalClient, store logstore.Store, opts Options) (*Spool, error) {
	if rdb == nil || store == nil {
		return nil, fmt.Errorf("%w: the Redis client and the store are required", ErrInvalidOptions)
	}
	o, err := opts.WithDefaults()
	if err != nil {
		return nil, err
	}
	return &Spool{rdb: rdb, store: store, opts: o, kick: make(chan struct{}, 1), flushCh: make(chan struct{}, 1)}, nil
}

// Start creates the stream and its group if they are new and starts adding and draining. ctx
// bounds only the start.
func (s *Spool) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case stateStarted:
		return nil
	case stateStopped:
		return fmt.Errorf("redisspool: start: %w; create a new Spool", ErrStopped)
	}
	err := s.rdb.XGroupCreateMkStream(ctx, s.opts.Key, s.opts.Group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("%w: create the log buffer %s: %w", ErrUnavailable, s.opts.Key, err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.stopping, s.commitDone, s.drainDone, s.done = make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{})
	s.state = stateStarted
	s.checkLength(ctx)
	go s.runCommitter(runCtx)
	go s.runDrainer(runCtx)
	go s.runWatch(runCtx)
	return nil
}

// Stop refuses new Writes, adds those queued, then inserts what this process read and what is
// left unread up to its own last entry, until ctx ends. What it cannot insert stays in Redis for
// the other hosts or the next start: nothing is lost. Safe to call twice.
func (s *Spool) Stop(ctx context.Context) error {
	s.mu.Lock()
	switch s.state {
	case stateNew:
		s.state = stateStopped
		s.mu.Unlock()
		return nil
	case stateStopped:
		done := s.done
		s.mu.Unlock()
		if done != nil {
			<-done
		}
		return s.stopErr
	}
	s.state = stateStopped
	close(s.stopping)
	s.mu.Unlock()
	select {
	case <-s.drainDone:
	case <-ctx.Done():
		s.cancel()
		<-s.drainDone
		s.stopErr = fmt.Errorf("redisspool: stop: rows left in %s for the other hosts or the next start: %w", s.opts.Key, context.Cause(ctx))
	}
	s.cancel()
	<-s.commitDone
	close(s.done)
	return s.stopErr
}

// Write validates rows and returns once Redis has them. A row that fails Row.Validate is
// refused, with nothing of that call written. While the stream is over MaxEntries, Write waits
// for the drain (back-pressure) or for ctx.
//
// An error other than a validation error means the rows were not acknowledged; some may still
// be stored, so write them again with the same IDs, which the store ignores.
func (s *Spool) Write(ctx context.Context, rows ...logstore.Row) error {
	if len(rows) == 0 {
		return nil
	}
	for i := range rows {
		if err := rows[i].Validate(); err != nil {
			return fmt.Errorf("redisspool: write: %w", err)
		}
	}
	for s.full.Load() {
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("redisspool: write: waiting for room in the log buffer (%d entries, limit %d; is the log store down? %s): %w",
				s.entries.Load(), s.opts.MaxEntries, s.lastErrorText(), context.Cause(ctx))
		}
	}
	w := &write{payload: writer.AppendPayload(nil, rows), done: make(chan error, 1), at: time.Now()}
	s.mu.Lock()
	switch s.state {
	case stateNew:
		s.mu.Unlock()
		return fmt.Errorf("redisspool: write: %w", ErrNotStarted)
	case stateStopped:
		s.mu.Unlock()
		return fmt.Errorf("redisspool: write: %w", ErrStopped)
	}
	s.queue = append(s.queue, w)
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	select {
	case err := <-w.done:
		if err != nil {
			return fmt.Errorf("redisspool: write: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("redisspool: write: waiting for Redis: %w", context.Cause(ctx))
	}
}

// Flush returns nil once every row this process wrote before the call is in the store —
// inserted by whichever host drained it. It asks this process's drainer to cut its batch at
// once; another host's drainer inserts within its FlushInterval, a dead one's after ClaimAfter.
func (s *Spool) Flush(ctx context.Context) error {
	s.mu.Lock()
	state, target := s.state, s.lastID
	s.mu.Unlock()
	if state == stateNew {
		return fmt.Errorf("redisspool: flush: %w", ErrNotStarted)
	}
	if target == "" {
		return nil
	}
	wait := 2 * time.Millisecond
	for {
		select {
		case s.flushCh <- struct{}{}:
		default:
		}
		ok, err := s.drainedPast(ctx, target)
		if err == nil && ok {
			return nil
		}
		if err != nil {
			s.setError(err)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("redisspool: flush: rows up to entry %s not inserted yet (last error: %s): %w", target, s.lastErrorText(), context.Cause(ctx))
		}
		wait = min(wait*2, 50*time.Millisecond)
	}
}

// drainedPast reports whether the group has read every entry up to target and acknowledged
// them all.
func (s *Spool) drainedPast(ctx context.Context, target string) (bool, error) {
	var groups *redis.XInfoGroupsCmd
	var pending *redis.XPendingExtCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		groups = p.XInfoGroups(ctx, s.opts.Key)
		pending = p.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: s.opts.Key, Group: s.opts.Group, Start: "-", End: target, Count: 1})
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, err
	}
	for _, g := range groups.Val() {
		if g.Name == s.opts.Group {
			return !idLess(g.LastDeliveredID, target) && len(pending.Val()) == 0, nil
		}
	}
	return false, fmt.Errorf("the group %s of %s is gone", s.opts.Group, s.opts.Key)
}

// Stats is a snapshot in the file writer's terms; SharedEntries is the stream's length at the
// last look.
func (s *Spool) Stats() writer.Stats {
	st := writer.Stats{
		InFlightRows: s.inFlight.Load(), Inserted: s.inserted.Load(), Batches: s.batches.Load(),
		Retries: s.retries.Load(), Retrying: s.retrying.Load(), Rejected: s.rejected.Load(), Corrupt: s.corrupt.Load(),
		SharedEntries: s.entries.Load(), TookOver: s.tookOver.Load(),
	}
	s.errMu.Lock()
	if s.lastErr != nil {
		st.LastError, st.LastErrorAt = s.lastErr.Error(), s.lastErrAt
	}
	s.errMu.Unlock()
	return st
}

// runCommitter adds queued Writes, as many as fit one entry per XADD: while one XADD is under
// way the next Writes queue, so under load each round trip carries many of them (group commit).
func (s *Spool) runCommitter(ctx context.Context) {
	defer close(s.commitDone)
	for {
		s.linger()
		s.mu.Lock()
		n, size := 0, 0
		for n < len(s.queue) && (n == 0 || size+len(s.queue[n].payload) <= maxEntryBytes) {
			size += len(s.queue[n].payload)
			n++
		}
		group := s.queue[:n:n]
		s.queue = s.queue[n:]
		if len(s.queue) == 0 {
			s.queue = nil
		}
		s.mu.Unlock()
		if n == 0 {
			select {
			case <-s.kick:
				continue
			case <-s.stopping:
			}
			// Stop began: Writes admitted before it are queued by now; add them, then end.
			s.mu.Lock()
			left := len(s.queue)
			s.mu.Unlock()
			if left == 0 {
				return
			}
			continue
		}
		id, err := s.add(ctx, group)
		if err == nil {
			s.mu.Lock()
			s.lastID = id
			s.mu.Unlock()
		}
		for _, w := range group {
			w.done <- err
		}
	}
}

// linger lets more Writes join the next group commit: until Options.Linger after the oldest
// queued one arrived, lingerWrites are queued, or Stop begins. Nothing queued: no wait.
func (s *Spool) linger() {
	if s.opts.Linger <= 0 {
		return
	}
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		s.mu.Lock()
		n := len(s.queue)
		var first time.Time
		if n > 0 {
			first = s.queue[0].at
		}
		s.mu.Unlock()
		wait := time.Until(first.Add(s.opts.Linger))
		if n == 0 || n >= lingerWrites || wait <= 0 || isClosed(s.stopping) {
			return
		}
		if t == nil {
			t = time.NewTimer(wait)
		} else {
			t.Reset(wait)
		}
		select {
		case <-s.kick:
		case <-t.C:
			return
		case <-s.stopping:
			return
		}
	}
}

// add XADDs one entry holding the payloads of group, retrying while Redis is unreachable, for
// WriteTimeout at most.
func (s *Spool) add(ctx context.Context, group []*write) (string, error) {
	values := make([]any, 0, 2*len(group))
	for i, w := range group {
		values = append(values, strconv.Itoa(i), w.payload)
	}
	deadline := time.Now().Add(s.opts.WriteTimeout)
	for attempt := 0; ; attempt++ {
		id, err := s.rdb.XAdd(ctx, &redis.XAddArgs{Stream: s.opts.Key, Values: values}).Result()
		if err == nil {
			if attempt > 0 {
				s.opts.Logger.Info("log buffer: Redis takes rows again", "attempts", attempt+1)
			}
			return id, nil
		}
		s.setError(err)
		if ctx.Err() != nil || time.Now().After(deadline) {
			return "", fmt.Errorf("%w: %d rows' entry not added to %s after %d tries: %w", ErrUnavailable, len(group), s.opts.Key, attempt+1, err)
		}
		d := s.backoff(attempt)
		s.opts.Logger.Warn("log buffer: Redis refused an entry; retrying", "attempt", attempt+1, "retryIn", d, "err", err)
		if !sleep(ctx, d) {
			return "", fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
}

// runDrainer reads entries into batches and inserts them; every ClaimAfter/4 it also takes
// over entries a dead drainer left. When Stop begins, it drains up to this process's last entry
// and leaves.
func (s *Spool) runDrainer(ctx context.Context) {
	defer close(s.drainDone)
	var lastLook time.Time
	for ctx.Err() == nil {
		if isClosed(s.stopping) {
			s.drainForStop(ctx)
			return
		}
		if time.Since(lastLook) >= s.opts.ClaimAfter/4 {
			lastLook = time.Now()
			s.takeOver(ctx)
		}
		block := min(s.opts.FlushInterval, s.opts.ClaimAfter/4, 500*time.Millisecond)
		msgs, err := s.read(ctx, block)
		if err != nil {
			s.setError(err)
			sleep(ctx, s.backoff(0))
			continue
		}
		if len(msgs) == 0 {
			continue
		}
		s.gather(ctx, time.Now())
		for rows := len(msgs); rows < s.opts.BatchRows; {
			more, err := s.read(ctx, -1)
			if err != nil || len(more) == 0 {
				break
			}
			msgs = append(msgs, more...)
			rows += len(more)
		}
		s.insertAndAck(ctx, msgs)
	}
}

// runWatch looks at the stream's length — the back-pressure switch — on its own, as the drainer
// may be busy retrying a store that is down, which is when the stream grows: every
// lengthEvery, and every 20 ms while the stream is full.
func (s *Spool) runWatch(ctx context.Context) {
	for {
		d := lengthEvery
		if s.full.Load() {
			d = 20 * time.Millisecond
		}
		select {
		case <-time.After(d):
		case <-s.drainDone:
			return
		case <-ctx.Done():
			return
		}
		s.checkLength(ctx)
	}
}

// gather lets rows accumulate for FlushInterval after the first arrived, unless a Flush or Stop
// wants them now.
func (s *Spool) gather(ctx context.Context, first time.Time) {
	t := time.NewTimer(time.Until(first.Add(s.opts.FlushInterval)))
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.flushCh:
	case <-s.stopping:
	case <-ctx.Done():
	}
}

// lengthEvery is how often runWatch reads the stream's length while it is not full.
const lengthEvery = 250 * time.Millisecond

// drainForStop inserts, once every queued Write is added, what this process read and the
// entries after it up to its own last one.
func (s *Spool) drainForStop(ctx context.Context) {
	select {
	case <-s.commitDone:
	case <-ctx.Done():
		return
	}
	s.mu.Lock()
	last := s.lastID
	s.mu.Unlock()
	for ctx.Err() == nil && last != "" {
		msgs, err := s.read(ctx, -1)
		if err != nil || len(msgs) == 0 {
			break
		}
		s.insertAndAck(ctx, msgs)
		if !idLess(msgs[len(msgs)-1].ID, last) {
			break
		}
	}
	// A consumer with nothing pending is only a name in the group: leave none behind.
	if ctx.Err() == nil {
		if p, err := s.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: s.opts.Key, Group: s.opts.Group, Start: "-", End: "+", Count: 1, Consumer: s.opts.Consumer}).Result(); err == nil && len(p) == 0 {
			_ = s.rdb.XGroupDelConsumer(ctx, s.opts.Key, s.opts.Group, s.opts.Consumer).Err()
		}
	}
}

// read takes up to readCount new entries for this consumer, waiting up to block for the first
// (block < 0: not at all).
func (s *Spool) read(ctx context.Context, block time.Duration) ([]redis.XMessage, error) {
	if block == 0 {
		block = -1 // BLOCK 0 would wait for ever
	}
	res, err := s.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: s.opts.Group, Consumer: s.opts.Consumer, Streams: []string{s.opts.Key, ">"}, Count: readCount, Block: block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		if strings.HasPrefix(err.Error(), "NOGROUP") {
			// The stream was deleted (FLUSHALL, a person): make it again, nothing was in it.
			_ = s.rdb.XGroupCreateMkStream(ctx, s.opts.Key, s.opts.Group, "0").Err()
		}
		return nil, err
	}
	var out []redis.XMessage
	for _, st := range res {
		out = append(out, st.Messages...)
	}
	return out, nil
}

// takeOver inserts the entries other drainers read and left unacknowledged for ClaimAfter — their
// process died — and forgets drainers that have nothing pending and have not been seen for as
// long (a live one is recreated by its next read).
func (s *Spool) takeOver(ctx context.Context) {
	start := "0-0"
	for ctx.Err() == nil {
		msgs, next, err := s.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: s.opts.Key, Group: s.opts.Group, Consumer: s.opts.Consumer, MinIdle: s.opts.ClaimAfter, Start: start, Count: readCount,
		}).Result()
		if err != nil {
			if !errors.Is(err, redis.Nil) {
				s.setError(err)
			}
			return
		}
		if len(msgs) > 0 {
			s.tookOver.Add(int64(len(msgs)))
			s.opts.Logger.Info("log buffer: inserting entries a stopped host had read", "entries", len(msgs))
			s.insertAndAck(ctx, msgs)
		}
		if next == "0-0" || next == "" {
			break
		}
		start = next
	}
	consumers, err := s.rdb.XInfoConsumers(ctx, s.opts.Key, s.opts.Group).Result()
	if err != nil {
		return
	}
	for _, c := range consumers {
		if c.Name != s.opts.Consumer && c.Pending == 0 && c.Idle >= s.opts.ClaimAfter {
			_ = s.rdb.XGroupDelConsumer(ctx, s.opts.Key, s.opts.Group, c.Name).Err()
		}
	}
}

// checkLength reads the stream's length: the back-pressure switch and Stats.
func (s *Spool) checkLength(ctx context.Context) {
	n, err := s.rdb.XLen(ctx, s.opts.Key).Result()
	if err != nil {
		return
	}
	s.entries.Store(n)
	s.full.Store(n > s.opts.MaxEntries)
}

// insertAndAck inserts the rows of msgs, retrying until the store takes them (renewing this
// consumer's claim on them meanwhile), then acknowledges and deletes the entries. It returns
// without acknowledging only when ctx ends: the entries stay pending and are taken over.
func (s *Spool) insertAndAck(ctx context.Context, msgs []redis.XMessage) {
	// Sized once from the payloads' headers: a batch's rows are thousands of wide structs, and
	// growing the slice payload by payload copied them over and over (10 % of a busy host's CPU).
	total := 0
	for _, m := range msgs {
		for _, v := range m.Values {
			if payload, ok := v.(string); ok {
				total += min(writer.PayloadRows(payload), len(payload))
			}
		}
	}
	rows := make([]logstore.Row, 0, total)
	ids := make([]string, 0, len(msgs))
	for _, m := range msgs {
		ids = append(ids, m.ID)
		for _, v := range m.Values {
			payload, ok := v.(string)
			if !ok {
				s.corrupt.Add(1)
				continue
			}
			var err error
			if rows, err = writer.DecodePayload(rows, []byte(payload)); err != nil {
				// Only something other than Trellis writing to the key makes this: keep a trace.
				s.corrupt.Add(1)
				s.opts.Logger.Error("log buffer: an entry's rows cannot be read; they are skipped", "entry", m.ID, "err", err)
			}
		}
	}
	for len(rows) > 0 {
		n := min(len(rows), s.opts.BatchRows)
		if !s.insert(ctx, rows[:n], ids) {
			return
		}
		rows = rows[n:]
	}
	for attempt := 0; ctx.Err() == nil; attempt++ {
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.XAck(ctx, s.opts.Key, s.opts.Group, ids...)
			p.XDel(ctx, s.opts.Key, ids...)
			return nil
		})
		if err == nil {
			s.entries.Add(-int64(len(ids)))
			return
		}
		s.setError(err)
		if attempt >= 5 {
			// Left pending: taken over and inserted again (harmlessly) after ClaimAfter.
			s.opts.Logger.Warn("log buffer: inserted entries could not be acknowledged", "entries", len(ids), "err", err)
			return
		}
		sleep(ctx, s.backoff(attempt))
	}
}

// insert sends rows until the store takes them or ctx ends. A batch the store refuses as invalid
// (Write's validation makes that unlikely) is split to find the rows at fault, which are logged
// and counted as rejected, so one bad row cannot stop the log.
func (s *Spool) insert(ctx context.Context, rows []logstore.Row, ids []string) bool {
	s.inFlight.Store(int64(len(rows)))
	defer s.inFlight.Store(0)
	renewed := time.Now()
	for attempt := 0; ; attempt++ {
		ictx, cancel := context.WithTimeout(ctx, s.opts.InsertTimeout)
		err := s.insertRows(ictx, rows)
		cancel()
		if err == nil {
			if attempt > 0 {
				s.opts.Logger.Info("log buffer: the store takes inserts again", "rows", len(rows), "attempts", attempt+1)
			}
			s.retrying.Store(false)
			s.inserted.Add(int64(len(rows)))
			s.batches.Add(1)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		s.retries.Add(1)
		s.retrying.Store(true)
		s.setError(err)
		d := s.backoff(attempt)
		s.opts.Logger.Warn("log buffer: insert failed; retrying the same rows", "rows", len(rows), "attempt", attempt+1, "retryIn", d, "err", err)
		if !sleep(ctx, d) {
			return false
		}
		if time.Since(renewed) >= s.opts.ClaimAfter/3 {
			// Still alive: keep the entries from being taken over while the store is down.
			renewed = time.Now()
			_ = s.rdb.XClaimJustID(ctx, &redis.XClaimArgs{Stream: s.opts.Key, Group: s.opts.Group, Consumer: s.opts.Consumer, Messages: ids}).Err()
		}
	}
}

func (s *Spool) insertRows(ctx context.Context, rows []logstore.Row) error {
	err := s.store.Insert(ctx, rows)
	if err == nil || !errors.Is(err, logstore.ErrInvalidRow) || errors.Is(err, logstore.ErrUnavailable) {
		return err
	}
	if len(rows) == 1 {
		s.rejected.Add(1)
		s.opts.Logger.Error("log buffer: the store refused a row as invalid; it is dropped", "id", rows[0].ID, "row", rows[0], "err", err)
		return nil
	}
	mid := len(rows) / 2
	if err := s.insertRows(ctx, rows[:mid]); err != nil {
		return err
	}
	return s.insertRows(ctx, rows[mid:])
}

func (s *Spool) setError(err error) {
	s.errMu.Lock()
	s.lastErr, s.lastErrAt = err, time.Now()
	s.errMu.Unlock()
}

func (s *Spool) lastErrorText() string {
	if st := s.Stats(); st.LastError != "" {
		return st.LastError
	}
	return "none"
}

// backoff is the wait before retry attempt+1, as the file writer's (writer.Backoff).
func (s *Spool) backoff(attempt int) time.Duration {
	return writer.Backoff(s.opts.BackoffMin, s.opts.BackoffMax, attempt)
}

func sleep(ctx context.Context, d time.Duration) bool {
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

// idLess orders stream IDs ("ms-seq").
func idLess(a, b string) bool {
	am, as := splitID(a)
	bm, bs := splitID(b)
	if am != bm {
		return am < bm
	}
	return as < bs
}

func splitID(id string) (uint64, uint64) {
	ms, seq, _ := strings.Cut(id, "-")
	m, _ := strconv.ParseUint(ms, 10, 64)
	q, _ := strconv.ParseUint(seq, 10, 64)
	return m, q
}
