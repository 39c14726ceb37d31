package writer

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/trellis-run/trellis/host/embedded/appendlog"
	"github.com/trellis-run/trellis/logstore"
)

// The spool is an appendlog in SpoolDir (its layout, the LOCK, segments and checkpoint, is
// described there) whose records are the codec's (codec.go), plus rejected.jsonl, rows the
// store refused as invalid, kept for a human. The segment names and magic are those the spool
// had before it moved onto appendlog, whose frames are the spool's own old records: spools
// left by an older Trellis are read as they are.
//
// Segments wholly before the acked position are deleted; the checkpoint only saves replaying
// rows the store already has, which its idempotency on Row.ID would make harmless anyway.
const (
	segMagic     = "TRLSPL1\n"
	segPrefix    = "seg-"
	segSuffix    = ".spool"
	rejectedName = "rejected.jsonl"
)

// batch is rows read from the spool for one insert, and where they end.
type batch struct {
	rows  []logstore.Row
	bytes int64
	end   appendlog.Position
}

// spool is the on-disk queue. Three parties use it: Write calls (append), the log's committer
// (committed, once a group commit is durable or failed) and the flusher (readBatch, ack, tidy).
// The mutex guards the state they share; the flusher alone touches the reader.
type spool struct {
	maxBytes int64
	log      *slog.Logger
	l        *appendlog.Log

	mu sync.Mutex
	// Append side.
	closed    bool
	closing   chan struct{} // closed with closed, wakes Writes blocked on space
	blocked   int
	space     chan struct{} // closed and replaced when pending bytes fall
	pendingB  int64         // bytes of records accepted and not yet inserted
	pendingR  int64
	groupRows map[*appendlog.Commit]int64 // rows of each group commit not yet done
	last      *appendlog.Commit           // the latest group appended to
	// Durable state, kept by committed.
	durableB  int64         // record bytes made durable since open, replay included
	durableR  int64         // their rows
	data      chan struct{} // closed and replaced when durable data grows
	firstAt   time.Time     // when the oldest unread durable row became durable
	syncErr   error         // the last spool write error, for Stats
	syncErrAt time.Time
	syncs     int64 // group commits made durable
	synced    int64 // rows in them
	replayed  int64
	// Reader side, advanced by the flusher.
	readPos   appendlog.Position
	readB     int64
	readR     int64
	acked     appendlog.Position // every row before it is in the store
	published appendlog.Position // acked, once the segments behind it are deleted: what Flush waits for
	ackedCh   chan struct{}      // closed and replaced when published moves
	flushTo   appendlog.Position // Flush callers wait for acked to pass it
	unacked   int                // batches read and not yet acked
	corrupt   int64              // records skipped as corrupt in fsynced data (a failing disk)

	tidyMu sync.Mutex // one tidy at a time: both the reader and the inserter call it

	// Reader-owned.
	rd *appendlog.Reader

	// afterRecord, when set (by tests only), runs in readBatch after each record is taken,
	// without mu: where the inserter's ack can interleave with reading the next batch.
	afterRecord func()
}

// openSpool locks dir and recovers what a previous writer left (cutting torn tails), counting
// the rows to replay.
func openSpool(dir string, segBytes, maxBytes int64, log *slog.Logger) (*spool, error) {
	s := &spool{
		maxBytes: maxBytes, log: log,
		closing: make(chan struct{}), space: make(chan struct{}), data: make(chan struct{}),
		ackedCh: make(chan struct{}), groupRows: map[*appendlog.Commit]int64{},
	}
	l, err := appendlog.Open(dir, appendlog.Options{
		Magic: segMagic, Prefix: segPrefix, Suffix: segSuffix, SegmentBytes: segBytes,
		// Rows stand alone: a bad segment costs its own rows only, a failed commit its own
		// Writes' (they get the error).
		SetAsideForeign: true,
		// The spool takes 100k rows a second: fdatasync into allocated blocks pays.
		Preallocate: true,
		OnCommit:    s.committed,
		Logger:      log,
	}, func(_ appendlog.Position, payload []byte) error {
		// A record that checks out but cannot be decoded counts no rows; readBatch skips it.
		n, _ := checkPayload(payload)
		s.durableB += appendlog.HeaderBytes + int64(len(payload))
		s.durableR += int64(n)
		return nil
	})
	if errors.Is(err, appendlog.ErrLocked) {
		return nil, fmt.Errorf("%w: %w; give every process its own SpoolDir", ErrSpoolLocked, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSpool, err)
	}
	s.l = l
	s.readPos = l.Start()
	s.acked, s.published = s.readPos, s.readPos
	s.rd = l.NewReader(s.readPos)
	s.pendingB, s.pendingR = s.durableB, s.durableR
	s.replayed = s.durableR
	if s.durableB > 0 {
		log.Info("writer: replaying spooled rows left by a previous run", "dir", dir, "rows", s.durableR, "bytes", s.durableB)
	}
	return s, nil
}

// append adds framed records holding rows to the current group commit, first waiting while
// the spool is full. The caller waits on the commit's Done for the fsync.
func (s *spool) append(done <-chan struct{}, recs []byte, rows int) (*appendlog.Commit, error) {
	n := int64(len(recs))
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.closed {
			return nil, ErrStopped
		}
		// An empty spool admits any record, so one larger than MaxSpoolBytes cannot wait for
		// ever.
		if s.pendingB == 0 || s.pendingB+n <= s.maxBytes {
			break
		}
		space := s.space
		s.blocked++
		s.mu.Unlock()
		var err error
		select {
		case <-space:
		case <-done:
			err = errDone
		case <-s.closing:
		}
		s.mu.Lock()
		s.blocked--
		if err != nil {
			return nil, err
		}
	}
	// Under mu, so committed (which takes mu) finds the rows of the group.
	c := s.l.Append(recs)
	s.groupRows[c] += int64(rows)
	s.last = c
	s.pendingB += n
	s.pendingR += int64(rows)
	return c, nil
}

// errDone tells append's caller its context ended while waiting for space.
var errDone = errors.New("context done")

// committed runs on the log's committer once a group commit is durable, or failed: its rows
// become readable, or stop taking space.
func (s *spool) committed(c *appendlog.Commit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows := s.groupRows[c]
	delete(s.groupRows, c)
	if err := c.Err(); err != nil {
		s.log.Error("writer: spool write failed; the Write calls of this group get the error", "err", err)
		s.pendingB -= c.Bytes()
		s.pendingR -= rows
		s.syncErr, s.syncErrAt = fmt.Errorf("%w: %w", ErrSpool, err), time.Now()
		s.signalSpace()
		return
	}
	if s.durableB == s.readB {
		s.firstAt = time.Now()
	}
	s.durableB += c.Bytes()
	s.durableR += rows
	s.syncs++
	s.synced += rows
	close(s.data)
	s.data = make(chan struct{})
}

func (s *spool) signalSpace() {
	close(s.space)
	s.space = make(chan struct{})
}

// unread reports the durable rows and bytes not yet read into a batch, when the oldest of them
// became durable, and a channel closed when more arrive.
func (s *spool) unread() (rows, bytes int64, since time.Time, more <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.durableR - s.readR, s.durableB - s.readB, s.firstAt, s.data
}

// readBatch reads durable records from the read position until the next record would take
// the batch past maxRows rows, or no durable data is left. Records in fsynced data that fail
// their checksum (a failing disk, not a crash) are skipped to the end of what was durable in
// their segment, and a record that checks out but does not decode is skipped alone; both are
// logged, nothing else is skipped. The rows' strings and JSON alias the log's read chunks,
// which are never modified, so decoding allocates little.
//
// The batch is read on the reader's own cursor and published (read position moved, batch
// counted as unacked) in one step at the end: tidy, run by the inserter's ack meanwhile, takes
// a read position with no unacked batch for "everything before it is in the store", so a
// half-read batch must never show in it.
func (s *spool) readBatch(maxRows int) (batch, error) {
	var b batch
	s.mu.Lock()
	b.rows = make([]logstore.Row, 0, max(min(int64(maxRows), s.durableR-s.readR), 0))
	s.mu.Unlock()
	var ioErr error
	var corrupt int64
	for len(b.rows) < maxRows {
		payload, err := s.rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !errors.Is(err, appendlog.ErrCorrupt) {
			ioErr = fmt.Errorf("%w: %w", ErrSpool, err)
			break
		}
		n0 := len(b.rows)
		if err == nil && n0 > 0 && n0+int(uint32le(payload[1:])) > maxRows {
			break // the next batch starts with this record
		}
		if err == nil {
			b.rows, err = decodeRows(b.rows, payload)
		}
		if err != nil {
			s.log.Error("writer: skipping corrupt data in a fsynced spool segment; its rows are lost (check the disk)",
				"position", s.rd.Pos(), "err", err)
			corrupt++
		}
		b.bytes += s.rd.Advance()
		if s.afterRecord != nil {
			s.afterRecord()
		}
	}
	pos := s.l.Normalize(s.rd.Pos())
	s.mu.Lock()
	s.readPos = pos
	s.readB += b.bytes
	s.readR += int64(len(b.rows))
	s.corrupt += corrupt
	b.end = pos
	if b.bytes > 0 {
		s.unacked++
	}
	if s.durableB == s.readB {
		s.firstAt = time.Time{}
	} else if len(b.rows) > 0 {
		// What is left arrived while this batch filled: its age is at most this long.
		s.firstAt = time.Now()
	}
	s.mu.Unlock()
	if ioErr != nil && b.bytes == 0 {
		return b, ioErr
	}
	return b, nil
}

// ack records that every row of b is in the store: it frees their space, deletes the segments
// wholly behind b, and moves the checkpoint.
func (s *spool) ack(b batch) {
	s.mu.Lock()
	s.pendingB -= b.bytes
	s.pendingR -= int64(len(b.rows))
	if s.acked.Less(b.end) {
		s.acked = b.end
	}
	if b.bytes > 0 {
		s.unacked--
	}
	s.signalSpace()
	s.mu.Unlock()
	s.tidy()
}

// tidy moves the read position past sealed ends, deletes segments behind the acked position
// and saves the checkpoint.
func (s *spool) tidy() {
	s.tidyMu.Lock()
	defer s.tidyMu.Unlock()
	s.mu.Lock()
	s.readPos = s.l.Normalize(s.readPos)
	// With no batch read and not acked, the read position only moved over ends of segments:
	// everything before it is acked. With one outstanding (being inserted, or a Stop that
	// gave up), it is not.
	if s.unacked == 0 && s.acked.Less(s.readPos) {
		s.acked = s.readPos
	}
	at := s.acked
	s.mu.Unlock()
	s.l.DeleteBefore(at)
	// Flush callers hear of it once the segments behind are gone too.
	s.mu.Lock()
	if s.published.Less(at) {
		s.published = at
		close(s.ackedCh)
		s.ackedCh = make(chan struct{})
	}
	s.mu.Unlock()
}

// markFlush returns the durable end now, and asks the flusher not to wait for a full batch
// until acked passes it.
func (s *spool) markFlush() appendlog.Position {
	p := s.l.End()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.flushTo.Less(p) {
		s.flushTo = p
	}
	return p
}

// flushWanted reports whether a Flush waits for rows not yet acked.
func (s *spool) flushWanted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked.Less(s.flushTo)
}

// ackedPast reports whether every row before p is in the store, and a channel closed when that
// may have changed.
func (s *spool) ackedPast(p appendlog.Position) (bool, <-chan struct{}) {
	s.mu.Lock()
	published, ch := s.published, s.ackedCh
	s.mu.Unlock()
	return !s.l.Normalize(published).Less(s.l.Normalize(p)), ch
}

// closeAppends refuses further appends, wakes Writes blocked on space, and waits for the
// commit of what was accepted.
func (s *spool) closeAppends() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.closing)
	last := s.last
	s.mu.Unlock()
	if last != nil {
		<-last.Done() // group commits complete in order
	}
}

// close ends the spool after closeAppends and the flusher's end. When everything was inserted
// the log deletes every segment, so a clean stop leaves an empty directory; otherwise they stay
// for the next writer. It reports the rows left.
func (s *spool) close() (left int64) {
	s.tidy()
	_ = s.rd.Close()
	s.mu.Lock()
	// Rows read into a batch the store never confirmed are still pending.
	left = s.pendingR
	s.mu.Unlock()
	if err := s.l.Close(); err != nil {
		s.log.Warn("writer: closing the spool", "err", err)
	}
	return left
}
