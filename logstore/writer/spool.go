package writer

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/trellis-run/trellis/logstore"
)

// Spool layout: SpoolDir holds
//
//	LOCK                      flock'ed by the one writer using the directory
//	seg-<id>.spool            segments: segMagic, then records (codec.go), ids ascending
//	checkpoint                how far the store has everything (segment id, offset), CRC'ed
//	rejected.jsonl            rows the store refused as invalid, kept for a human
//
// Only the newest segment is appended to; older ones are sealed. Segments before the
// checkpoint's are deleted; the checkpoint only saves replaying rows the store already has,
// which its idempotency on Row.ID would make harmless anyway, so it is written without fsync.
const (
	segMagic       = "TRLSPL1\n"
	segHeaderLen   = int64(len(segMagic))
	segPrefix      = "seg-"
	segSuffix      = ".spool"
	checkpointName = "checkpoint"
	lockName       = "LOCK"
	rejectedName   = "rejected.jsonl"
)

func segName(id uint64) string { return fmt.Sprintf("%s%016d%s", segPrefix, id, segSuffix) }

// position is a place in the spool: a segment and a byte offset in it. Positions order the
// spool: every row before a position is older than every row after it.
type position struct {
	seg uint64
	off int64
}

func (p position) less(q position) bool {
	return p.seg < q.seg || p.seg == q.seg && p.off < q.off
}

// commitGroup collects the records of concurrent Writes that one fsync makes durable.
type commitGroup struct {
	buf  []byte
	rows int
	done chan struct{}
	err  error // set before done is closed
}

func newGroup(buf []byte) *commitGroup {
	return &commitGroup{buf: buf[:0], done: make(chan struct{})}
}

// batch is rows read from the spool for one insert, and where they end.
type batch struct {
	rows  []logstore.Row
	bytes int64
	end   position
}

// spool is the on-disk queue. Three parties use it: Write calls (append), the syncer goroutine
// (writes and fsyncs groups, rotates segments) and the flusher (readBatch, ack, tidy). The
// mutex guards the state they share; the syncer alone touches the segment being appended, the
// flusher alone touches the reader.
type spool struct {
	dir      string
	segBytes int64
	maxBytes int64
	log      *slog.Logger
	lock     *os.File

	mu sync.Mutex
	// Append side.
	group    *commitGroup
	spare    []byte // buffer of the last committed group, reused
	closed   bool
	closing  chan struct{} // closed with closed, wakes Writes blocked on space
	blocked  int
	space    chan struct{} // closed and replaced when pending bytes fall
	pendingB int64         // bytes of records accepted and not yet inserted
	pendingR int64
	// Durable state, published by the syncer.
	active     uint64
	durableOff int64
	sealed     map[uint64]int64 // sealed segments not yet deleted, and their valid lengths
	durableB   int64            // record bytes made durable since open, replay included
	durableR   int64
	data       chan struct{} // closed and replaced when durable data grows
	firstAt    time.Time     // when the oldest unread durable row became durable
	syncErr    error         // the last spool write error, for Stats
	syncErrAt  time.Time
	// Reader side, advanced by the flusher.
	readPos   position
	readB     int64
	readR     int64
	acked     position      // every row before it is in the store
	published position      // acked, once the segments behind it are deleted: what Flush waits for
	ackedCh   chan struct{} // closed and replaced when published moves
	flushTo   position      // Flush callers wait for acked to pass it
	unacked   int           // batches read and not yet acked
	corrupt   int64         // records skipped as corrupt in fsynced data (a failing disk)
	syncs     int64         // commit groups fsynced
	synced    int64         // rows in them
	replayed  int64

	// Syncer-owned.
	kick       chan struct{}
	quit       chan struct{}
	syncerDone chan struct{}
	f          *os.File // active segment
	fsize      int64
	falloc     bool  // f was preallocated: writes into it need no metadata update
	written    int64 // bytes appended since open, to decide when preallocation pays
	// Preparer: keeps one zero-filled segment ready once the volume calls for it.
	wantPrep chan struct{}
	prepared chan *os.File
	prepDone chan struct{}
	prepN    int
	spares   []string // recycled segment files ready for reuse, under mu
	reused   int      // recycled files handed out, under mu

	tidyMu   sync.Mutex // one tidy at a time: both the reader and the inserter call it
	lastCkpt position   // under tidyMu

	// Reader-owned.
	rf       *os.File // segment being read
	rfSeg    uint64
	chunk    []byte // bytes of rf from chunkOff, never modified: batch rows alias them
	chunkOff int64

	// afterRecord, when set (by tests only), runs in readBatch after each record is taken,
	// without mu: where the inserter's ack can interleave with reading the next batch.
	afterRecord func()
}

// openSpool locks dir, recovers what a previous writer left (cutting torn tails), and opens
// a fresh segment for appends. It starts the syncer.
func openSpool(dir string, segBytes, maxBytes int64, log *slog.Logger) (*spool, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("%w: create spool directory: %v", ErrSpool, err)
	}
	lock, err := lockDir(filepath.Join(dir, lockName))
	if err != nil {
		return nil, err
	}
	s := &spool{
		dir: dir, segBytes: segBytes, maxBytes: maxBytes, log: log, lock: lock,
		closing: make(chan struct{}), space: make(chan struct{}), data: make(chan struct{}),
		ackedCh: make(chan struct{}), sealed: map[uint64]int64{},
		kick: make(chan struct{}, 1), quit: make(chan struct{}), syncerDone: make(chan struct{}),
		wantPrep: make(chan struct{}), prepared: make(chan *os.File), prepDone: make(chan struct{}),
	}
	s.group = newGroup(nil)
	if err := s.recover(); err != nil {
		_ = unlockDir(lock)
		return nil, err
	}
	go s.runSyncer()
	go s.runPreparer()
	return s, nil
}

// recover scans the segments left in the directory, from the checkpoint on, and cuts each at
// its first record that does not check out: a tail torn by a crash, never acknowledged.
func (s *spool) recover() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("%w: read spool directory: %v", ErrSpool, err)
	}
	var ids []uint64
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			_ = os.Remove(filepath.Join(s.dir, name))
			continue
		}
		if !strings.HasPrefix(name, segPrefix) || !strings.HasSuffix(name, segSuffix) {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, segPrefix), segSuffix), 10, 64)
		if err != nil || id == 0 {
			continue
		}
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })

	ckpt, hasCkpt := s.readCheckpoint()
	next := ckpt.seg + 1
	if len(ids) > 0 {
		next = max(next, ids[len(ids)-1]+1)
	}
	s.readPos = position{seg: next, off: segHeaderLen}
	first := true
	for _, id := range ids {
		path := filepath.Join(s.dir, segName(id))
		if hasCkpt && id < ckpt.seg {
			// Inserted before the previous writer stopped; its deletion did not happen.
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("%w: remove inserted segment: %v", ErrSpool, err)
			}
			continue
		}
		from := segHeaderLen
		if hasCkpt && id == ckpt.seg {
			from = ckpt.off
		}
		valid, rows, recBytes, ok, err := s.scanSegment(path, id, from)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		s.sealed[id] = valid
		s.durableB += recBytes
		s.durableR += rows
		if first {
			s.readPos = position{seg: id, off: min(from, valid)}
			first = false
		}
	}
	s.pendingB, s.pendingR = s.durableB, s.durableR
	s.replayed = s.durableR
	s.acked, s.published = s.readPos, s.readPos
	if s.durableB > 0 {
		s.log.Info("writer: replaying spooled rows left by a previous run", "dir", s.dir, "rows", s.durableR, "bytes", s.durableB)
	}
	return s.openSegment(next)
}

// scanSegment checks the records of one segment from offset from, truncates it after the last
// good one, and reports its valid length and the rows and record bytes after from. ok is
// false when the file is not a segment (then it is set aside).
func (s *spool) scanSegment(path string, id uint64, from int64) (valid, rows, recBytes int64, ok bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, 0, 0, false, fmt.Errorf("%w: open segment: %v", ErrSpool, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, 0, false, fmt.Errorf("%w: stat segment: %v", ErrSpool, err)
	}
	size := st.Size()
	magic := make([]byte, segHeaderLen)
	if _, err := io.ReadFull(f, magic); err != nil || string(magic) != segMagic {
		if size < segHeaderLen && bytes.HasPrefix([]byte(segMagic), magic[:max(size, 0)]) {
			// Created by a writer killed before its header landed: nothing was ever in it.
			_ = f.Close()
			return 0, 0, 0, false, os.Remove(path)
		}
		s.log.Error("writer: spool file is not a segment; set aside as .corrupt", "file", path)
		_ = f.Close()
		return 0, 0, 0, false, os.Rename(path, path+".corrupt")
	}
	if from > size {
		s.log.Warn("writer: checkpoint is past the end of its segment; the file system lost data", "file", path, "size", size, "checkpoint", from)
		from = size
	}
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return 0, 0, 0, false, fmt.Errorf("%w: seek segment: %v", ErrSpool, err)
	}
	r := bufio.NewReaderSize(f, 1<<20)
	off := from
	hdr := make([]byte, recHeaderLen)
	var payload []byte
	var why error
	stale := false
	for off < size {
		if _, err := io.ReadFull(r, hdr); err != nil {
			why = fmt.Errorf("record header cut short")
			break
		}
		length, sum := parseHeader(hdr)
		if seg := recordSeg(hdr); seg != uint32(id) {
			// A record of an earlier life of a recycled file (or zeros): this segment ends.
			stale, why = seg != 0, fmt.Errorf("record of segment %d", seg)
			break
		}
		if length == 0 || length > maxRecordBytes || off+recHeaderLen+int64(length) > size {
			why = fmt.Errorf("record length %d does not fit", length)
			break
		}
		if cap(payload) < int(length) {
			payload = make([]byte, length)
		}
		payload = payload[:length]
		if _, err := io.ReadFull(r, payload); err != nil {
			why = fmt.Errorf("record cut short")
			break
		}
		n, err := checkPayload(payload, sum)
		if err != nil {
			why = err
			break
		}
		off += recHeaderLen + int64(length)
		rows += int64(n)
		recBytes += recHeaderLen + int64(length)
	}
	if off < size {
		if zero, _ := allZero(f, off, size); zero || stale {
			// The unused end of a preallocated or recycled segment: nothing was torn.
			s.log.Debug("writer: trimmed the unused end of a preallocated spool segment", "file", path, "bytes", size-off)
		} else {
			s.log.Warn("writer: cut a torn tail off a spool segment (rows there were never acknowledged)",
				"file", path, "offset", off, "bytes", size-off, "reason", why)
		}
		if err := f.Truncate(off); err != nil {
			return 0, 0, 0, false, fmt.Errorf("%w: cut torn tail: %v", ErrSpool, err)
		}
	}
	return off, rows, recBytes, true, nil
}

// allZero reports whether f holds only zero bytes in [from, to).
func allZero(f *os.File, from, to int64) (bool, error) {
	buf := make([]byte, 1<<20)
	for off := from; off < to; {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), to-off)], off)
		for _, c := range buf[:n] {
			if c != 0 {
				return false, nil
			}
		}
		if err != nil && n == 0 {
			return false, err
		}
		off += int64(n)
	}
	return true, nil
}

// openSegment creates segment id with its header, durably (file and directory entry), and
// makes it the active one. Called by recover, then only by the syncer.
func (s *spool) openSegment(id uint64) error {
	f, err := s.createSegment(id)
	if err != nil {
		return err
	}
	s.f, s.fsize = f, segHeaderLen
	s.mu.Lock()
	s.active, s.durableOff = id, segHeaderLen
	s.mu.Unlock()
	return nil
}

func (s *spool) createSegment(id uint64) (*os.File, error) {
	path := filepath.Join(s.dir, segName(id))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, fmt.Errorf("%w: create segment: %v", ErrSpool, err)
	}
	if _, err := f.WriteString(segMagic); err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("%w: create segment: %v", ErrSpool, err)
	}
	return f, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// append adds framed records holding rows to the current commit group, first waiting while
// the spool is full. The caller waits on the group's done channel for the fsync.
func (s *spool) append(done <-chan struct{}, recs []byte, rows int) (*commitGroup, error) {
	n := int64(len(recs))
	s.mu.Lock()
	for {
		if s.closed {
			s.mu.Unlock()
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
			s.mu.Unlock()
			return nil, err
		}
	}
	g := s.group
	g.buf = append(g.buf, recs...)
	g.rows += rows
	s.pendingB += n
	s.pendingR += int64(rows)
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return g, nil
}

// errDone tells append's caller its context ended while waiting for space.
var errDone = errors.New("context done")

// runSyncer writes and fsyncs commit groups until quit, then commits what is left.
func (s *spool) runSyncer() {
	defer close(s.syncerDone)
	for {
		quitting := false
		select {
		case <-s.kick:
		case <-s.quit:
			quitting = true
		}
		s.mu.Lock()
		g := s.group
		s.group = newGroup(s.spare)
		s.spare = nil
		s.mu.Unlock()
		if len(g.buf) > 0 {
			s.commit(g)
		} else {
			close(g.done)
		}
		if quitting {
			return
		}
	}
}

// commit makes one group durable: one write, one fdatasync, then a new segment if this one is
// full. On failure the bytes after the last good record are cut, so the next record starts
// clean and a reader never meets a half-written one before a good one.
func (s *spool) commit(g *commitGroup) {
	good := s.fsize
	stampSeg(g.buf, s.active) // only the syncer changes active
	_, err := s.f.WriteAt(g.buf, good)
	if err == nil {
		err = datasync(s.f)
	}
	if err != nil {
		g.err = fmt.Errorf("%w: append to %s: %v", ErrSpool, s.f.Name(), err)
		s.log.Error("writer: spool write failed; the Write calls of this group get the error", "err", err)
		// The next group is written at the same offset, over whatever part of this one landed.
		// A preallocated segment keeps its zeros after that; otherwise cut what landed, so a
		// longer torn remainder does not lie after the next record (recovery would cut it as a
		// torn tail anyway, and readers never read past the durable end).
		if !s.falloc {
			if terr := s.f.Truncate(good); terr != nil {
				s.log.Warn("writer: cannot cut a failed spool write", "err", terr)
			}
		}
		s.mu.Lock()
		s.pendingB -= int64(len(g.buf))
		s.pendingR -= int64(g.rows)
		s.syncErr, s.syncErrAt = g.err, time.Now()
		s.signalSpace()
		s.mu.Unlock()
		close(g.done)
		return
	}
	s.fsize += int64(len(g.buf))
	s.written += int64(len(g.buf))
	s.mu.Lock()
	if s.durableB == s.readB {
		s.firstAt = time.Now()
	}
	s.durableOff = s.fsize
	s.durableB += int64(len(g.buf))
	s.durableR += int64(g.rows)
	s.syncs++
	s.synced += int64(g.rows)
	close(s.data)
	s.data = make(chan struct{})
	if cap(g.buf) <= 8<<20 {
		s.spare = g.buf
	}
	s.mu.Unlock()
	if s.written >= s.prepThreshold() {
		select {
		case s.wantPrep <- struct{}{}:
		default:
		}
	}
	if s.fsize >= s.segBytes {
		s.rotate(nil)
	} else if !s.falloc && s.written >= s.prepThreshold() {
		// Leave a growing file for a preallocated one as soon as one is ready: appends to a
		// growing file pay a metadata journal commit on every fdatasync.
		select {
		case f := <-s.prepared:
			s.rotate(f)
		default:
		}
	}
	close(g.done)
}

// prepThreshold is how much must be written before segments are preallocated: a writer that
// logs little never pays for zero-filling a segment it will not use.
func (s *spool) prepThreshold() int64 { return min(1<<20, s.segBytes/2) }

// rotate seals the active segment and starts the next one: ready (a preallocated file from
// the preparer), or one made now. When none can be had, appends go on into the current one
// and a later commit tries again.
func (s *spool) rotate(ready *os.File) {
	s.mu.Lock()
	id := s.active
	s.mu.Unlock()
	if ready == nil {
		select {
		case ready = <-s.prepared:
		default:
		}
	}
	var f *os.File
	var err error
	falloc := false
	if ready != nil {
		f, err = s.adopt(ready, id+1)
		falloc = err == nil
	}
	if f == nil {
		f, err = s.createSegment(id + 1)
	}
	if err != nil {
		s.log.Error("writer: cannot start a new spool segment", "err", err)
		return
	}
	old := s.f
	s.mu.Lock()
	s.sealed[id] = s.durableOff
	s.active, s.durableOff = id+1, segHeaderLen
	close(s.data)
	s.data = make(chan struct{})
	s.mu.Unlock()
	s.f, s.fsize, s.falloc = f, segHeaderLen, falloc
	_ = old.Close()
}

// adopt renames a prepared file to segment id, durably. On failure the file is discarded.
func (s *spool) adopt(f *os.File, id uint64) (*os.File, error) {
	path := filepath.Join(s.dir, segName(id))
	err := os.Rename(f.Name(), path)
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return nil, fmt.Errorf("%w: adopt a preallocated segment: %v", ErrSpool, err)
	}
	return f, nil
}

// runPreparer keeps one zero-filled segment ready, once the syncer says the volume calls for
// it. Writes into allocated, already-written blocks make fdatasync flush data only, several
// times faster than appends that grow the file (measured in docs/logstore.md).
func (s *spool) runPreparer() {
	defer close(s.prepDone)
	select {
	case <-s.wantPrep:
	case <-s.quit:
		return
	}
	for {
		f, err := s.preallocate()
		if err != nil {
			s.log.Warn("writer: cannot preallocate a spool segment; appending instead (slower fsyncs)", "err", err)
			select {
			case <-time.After(10 * time.Second):
				continue
			case <-s.quit:
				return
			}
		}
		select {
		case s.prepared <- f:
		case <-s.quit:
			_ = f.Close()
			_ = os.Remove(f.Name())
			return
		}
	}
}

// maxSpares is how many inserted segment files are kept for reuse.
const maxSpares = 2

// recycle keeps the file of an inserted segment for reuse as a later one, instead of zero-
// filling a new file: its blocks are allocated and written, so appends into it need no
// metadata update either. Its stale records are told apart by their segment id. A crash
// leaves only a .tmp file, removed at the next start. It reports whether the file was kept.
func (s *spool) recycle(path string, id uint64) bool {
	st, err := os.Stat(path)
	if err != nil || st.Size() < s.segBytes {
		return false
	}
	s.mu.Lock()
	full := len(s.spares) >= maxSpares || s.closed
	s.mu.Unlock()
	if full {
		return false
	}
	spare := filepath.Join(s.dir, fmt.Sprintf("recycle-%d.tmp", id))
	if err := os.Rename(path, spare); err != nil {
		return false
	}
	s.mu.Lock()
	s.spares = append(s.spares, spare)
	s.mu.Unlock()
	return true
}

// preallocate returns a file ready to become a segment: a recycled one, or a new one holding
// the header and zeros up to the segment size. A crash leaves only a .tmp file, removed at the
// next start.
func (s *spool) preallocate() (*os.File, error) {
	s.mu.Lock()
	var spare string
	if n := len(s.spares); n > 0 {
		spare, s.spares = s.spares[n-1], s.spares[:n-1]
	}
	s.mu.Unlock()
	if spare != "" {
		// Its header is already the segment magic; the rest is overwritten as records come.
		f, err := os.OpenFile(spare, os.O_WRONLY, 0)
		if err == nil {
			s.mu.Lock()
			s.reused++
			s.mu.Unlock()
			return f, nil
		}
		_ = os.Remove(spare)
	}
	s.prepN++
	path := filepath.Join(s.dir, fmt.Sprintf("prealloc-%d.tmp", s.prepN))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*os.File, error) {
		_ = f.Close()
		_ = os.Remove(path)
		return nil, err
	}
	if _, err := f.WriteString(segMagic); err != nil {
		return fail(err)
	}
	zeros := make([]byte, 1<<20)
	for off := segHeaderLen; off < s.segBytes; {
		n := min(int64(len(zeros)), s.segBytes-off)
		if _, err := f.Write(zeros[:n]); err != nil {
			return fail(err)
		}
		off += n
		select {
		case <-s.quit:
			return fail(errors.New("spool closing"))
		default:
		}
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	return f, nil
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

// limitOf is how far segment seg may be read, and whether it is sealed. Caller holds mu.
func (s *spool) limitOf(seg uint64) (int64, bool, bool) {
	if seg == s.active {
		return s.durableOff, false, true
	}
	l, ok := s.sealed[seg]
	return l, true, ok
}

// nextSeg is the first segment after seg that exists. Caller holds mu.
func (s *spool) nextSeg(seg uint64) uint64 {
	next := s.active
	for id := range s.sealed {
		if id > seg && id < next {
			next = id
		}
	}
	return next
}

// normalize moves the read position past the ends of sealed segments, so the segments behind
// it can be deleted. Caller holds mu.
func (s *spool) normalize() { s.readPos = s.normalized(s.readPos) }

// normalized is p moved past the ends of sealed segments. Caller holds mu.
func (s *spool) normalized(p position) position {
	for {
		limit, sealed, ok := s.limitOf(p.seg)
		if !ok || sealed && p.off >= limit {
			if p.seg >= s.active {
				return p
			}
			p = position{seg: s.nextSeg(p.seg), off: segHeaderLen}
			continue
		}
		return p
	}
}

// readBatch reads durable records from the read position until the next record would take
// the batch past maxRows rows, or no durable data is left. Records in fsynced data that fail
// their checksum (a failing disk, not a crash) are skipped to the end of what was durable and
// logged; nothing else is skipped. The rows' strings and JSON alias the read chunk, which is
// never modified, so decoding allocates little.
//
// The batch is read on a cursor of its own and published (read position moved, batch counted
// as unacked) in one step at the end: tidy, run by the inserter's ack meanwhile, takes a read
// position with no unacked batch for "everything before it is in the store", so a half-read
// batch must never show in it.
func (s *spool) readBatch(maxRows int) (batch, error) {
	var b batch
	s.mu.Lock()
	b.rows = make([]logstore.Row, 0, max(min(int64(maxRows), s.durableR-s.readR), 0))
	pos := s.readPos
	s.mu.Unlock()
	var ioErr error
	var corrupt int64
	for len(b.rows) < maxRows {
		s.mu.Lock()
		pos = s.normalized(pos)
		limit, _, _ := s.limitOf(pos.seg)
		s.mu.Unlock()
		if pos.off >= limit {
			break
		}
		length, payload, err := s.readRecord(pos, limit)
		if err != nil && !errors.Is(err, errCorrupt) {
			ioErr = fmt.Errorf("%w: read %s: %v", ErrSpool, segName(pos.seg), err)
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
				"file", segName(pos.seg), "offset", pos.off, "bytes", limit-pos.off, "err", err)
			length = limit - pos.off
			corrupt++
		}
		pos.off += length
		b.bytes += length
		if s.afterRecord != nil {
			s.afterRecord()
		}
	}
	s.mu.Lock()
	s.readPos = pos
	s.normalize()
	s.readB += b.bytes
	s.readR += int64(len(b.rows))
	s.corrupt += corrupt
	b.end = s.readPos
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

// readChunkBytes is how much of a segment the reader reads at once.
const readChunkBytes = 4 << 20

// readRecord returns the total length and checked payload of the record at pos, which must end
// by limit. The payload aliases the current chunk.
func (s *spool) readRecord(pos position, limit int64) (int64, []byte, error) {
	if pos.off+recHeaderLen > limit {
		return 0, nil, fmt.Errorf("%w: record header past the durable end", errCorrupt)
	}
	hdr, err := s.bytesAt(pos, recHeaderLen, limit)
	if err != nil {
		return 0, nil, err
	}
	length, sum := parseHeader(hdr)
	total := recHeaderLen + int64(length)
	if length == 0 || length > maxRecordBytes || pos.off+total > limit {
		return 0, nil, fmt.Errorf("%w: record length %d does not fit", errCorrupt, length)
	}
	if seg := recordSeg(hdr); seg != uint32(pos.seg) {
		return 0, nil, fmt.Errorf("%w: record stamped for segment %d", errCorrupt, seg)
	}
	rec, err := s.bytesAt(pos, total, limit)
	if err != nil {
		return 0, nil, err
	}
	p := rec[recHeaderLen:total:total]
	if _, err := checkPayload(p, sum); err != nil {
		return 0, nil, err
	}
	return total, p, nil
}

// bytesAt returns n bytes of the spool at pos, from the current chunk or a new one read from
// pos (at least n bytes, up to readChunkBytes, never past limit). Chunks are never reused: the
// rows of earlier batches may still alias them.
func (s *spool) bytesAt(pos position, n, limit int64) ([]byte, error) {
	if s.rf == nil || s.rfSeg != pos.seg {
		if s.rf != nil {
			_ = s.rf.Close()
			s.rf = nil
		}
		f, err := os.Open(filepath.Join(s.dir, segName(pos.seg)))
		if err != nil {
			return nil, err
		}
		s.rf, s.rfSeg, s.chunk = f, pos.seg, nil
	}
	if pos.off < s.chunkOff || pos.off+n > s.chunkOff+int64(len(s.chunk)) {
		size := min(max(n, readChunkBytes), limit-pos.off)
		chunk := make([]byte, size)
		if _, err := s.rf.ReadAt(chunk, pos.off); err != nil {
			return nil, err
		}
		s.chunk, s.chunkOff = chunk, pos.off
	}
	start := pos.off - s.chunkOff
	return s.chunk[start : start+n : start+n], nil
}

// ack records that every row of b is in the store: it frees their space, deletes the segments
// wholly behind b, and moves the checkpoint.
func (s *spool) ack(b batch) {
	s.mu.Lock()
	s.pendingB -= b.bytes
	s.pendingR -= int64(len(b.rows))
	if s.acked.less(b.end) {
		s.acked = b.end
	}
	if b.bytes > 0 {
		s.unacked--
	}
	s.signalSpace()
	s.mu.Unlock()
	s.tidy()
}

// tidy moves the read position past sealed ends, deletes sealed segments behind the acked
// position and saves the checkpoint.
func (s *spool) tidy() {
	s.tidyMu.Lock()
	defer s.tidyMu.Unlock()
	s.mu.Lock()
	s.normalize()
	// With no batch read and not acked, the read position only moved over ends of segments:
	// everything before it is acked. With one outstanding (being inserted, or a Stop that
	// gave up), it is not.
	if s.unacked == 0 && s.acked.less(s.readPos) {
		s.acked = s.readPos
	}
	at := s.acked
	var gone []uint64
	for id := range s.sealed {
		if id < at.seg {
			gone = append(gone, id)
			delete(s.sealed, id)
		}
	}
	s.mu.Unlock()
	for _, id := range gone {
		path := filepath.Join(s.dir, segName(id))
		if s.recycle(path, id) {
			continue
		}
		// The reader may still hold the file open; on Unix that is harmless (it has moved on).
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			s.log.Warn("writer: cannot delete an inserted spool segment; it is replayed harmlessly after a restart", "err", err)
		}
	}
	s.writeCheckpoint(at)
	// Flush callers hear of it once the segments behind are gone too.
	s.mu.Lock()
	if s.published.less(at) {
		s.published = at
		close(s.ackedCh)
		s.ackedCh = make(chan struct{})
	}
	s.mu.Unlock()
}

func (s *spool) writeCheckpoint(p position) {
	if p == s.lastCkpt {
		return
	}
	var b [20]byte
	binary.LittleEndian.PutUint64(b[:], p.seg)
	binary.LittleEndian.PutUint64(b[8:], uint64(p.off))
	binary.LittleEndian.PutUint32(b[16:], crc32.Checksum(b[:16], castagnoli))
	tmp := filepath.Join(s.dir, checkpointName+".tmp")
	err := os.WriteFile(tmp, b[:], 0o640)
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.dir, checkpointName))
	}
	if err != nil {
		s.log.Warn("writer: cannot save the spool checkpoint; inserted rows may be replayed (harmlessly) after a restart", "err", err)
		return
	}
	s.lastCkpt = p
}

func (s *spool) readCheckpoint() (position, bool) {
	b, err := os.ReadFile(filepath.Join(s.dir, checkpointName))
	if err != nil || len(b) != 20 || crc32.Checksum(b[:16], castagnoli) != binary.LittleEndian.Uint32(b[16:]) {
		if err == nil {
			s.log.Warn("writer: spool checkpoint is damaged; replaying every segment (harmless, the store is idempotent)")
		}
		return position{}, false
	}
	p := position{seg: binary.LittleEndian.Uint64(b), off: int64(binary.LittleEndian.Uint64(b[8:]))}
	if p.off < segHeaderLen {
		return position{}, false
	}
	return p, true
}

// markFlush returns the durable end now, and asks the flusher not to wait for a full batch
// until acked passes it.
func (s *spool) markFlush() position {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := position{seg: s.active, off: s.durableOff}
	if s.flushTo.less(p) {
		s.flushTo = p
	}
	return p
}

// flushWanted reports whether a Flush waits for rows not yet acked.
func (s *spool) flushWanted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked.less(s.flushTo)
}

// ackedPast reports whether every row before p is in the store, and a channel closed when that
// may have changed.
func (s *spool) ackedPast(p position) (bool, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.published.less(p), s.ackedCh
}

// closeAppends refuses further appends, wakes Writes blocked on space, and waits for the syncer
// to commit what was accepted.
func (s *spool) closeAppends() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()
	close(s.quit)
	<-s.syncerDone
}

// close ends the spool after closeAppends and the flusher's end: when everything was inserted
// it deletes every segment, so a clean stop leaves an empty directory; otherwise it keeps them
// for the next writer. It reports the rows left.
func (s *spool) close() (left int64) {
	<-s.prepDone
	s.tidy()
	if s.rf != nil {
		_ = s.rf.Close()
		s.rf = nil
	}
	_ = s.f.Close()
	s.mu.Lock()
	// Rows read into a batch the store never confirmed are still pending: only pending bytes
	// say whether every segment may go.
	left = s.pendingR
	drained := s.pendingB == 0
	active := s.active
	s.mu.Unlock()
	if drained {
		s.mu.Lock()
		for id := range s.sealed {
			_ = os.Remove(filepath.Join(s.dir, segName(id)))
		}
		s.mu.Unlock()
		_ = os.Remove(filepath.Join(s.dir, segName(active)))
		s.writeCheckpoint(position{seg: active, off: segHeaderLen})
	}
	s.mu.Lock()
	spares := s.spares
	s.spares = nil
	s.mu.Unlock()
	for _, p := range spares {
		_ = os.Remove(p)
	}
	_ = unlockDir(s.lock)
	return left
}
