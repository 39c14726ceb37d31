// Package appendlog is a durable append-only log of records in a directory of its own, for the
// embedded backends that must not lose what they acknowledged: the local bus and the log
// writer's spool.
//
// It owns: the directory's lock (one Log per directory, across processes), numbered segment
// files that start with the owner's magic and hold checksummed frames, group commit (records
// appended concurrently share one write and one fdatasync), recovery on open (each segment is
// cut at its first frame that does not check out: a tail torn by a crash, never committed),
// reading committed records from a position while appends go on, deleting the segments an
// owner has consumed (with a checkpoint saying where to start after a restart), rewriting the
// whole log as one snapshot segment, and, as an option, preallocated and recycled segment files.
//
// It must not: interpret payloads (they are the owner's), report a record committed before it
// is durable, or import anything of ours.
package appendlog

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Directory layout:
//
//	LOCK                              flock'ed by the one Log using the directory
//	<Prefix><id:016d><Suffix>         segments: Magic, then frames (frame.go); ids ascending
//	<Prefix><id:016d>.base<Suffix>    a segment written by Rewrite: every older one is void
//	checkpoint                        where Open starts reading (DeleteBefore), CRC'ed
//	*.tmp                             files being prepared; removed by Open
//
// Only the newest segment (the active one) is appended to; older ones are sealed. Owners may
// keep files of their own in the directory, under other names and never ending in .tmp.
const (
	lockName       = "LOCK"
	checkpointName = "checkpoint"
	baseMark       = ".base"
	tmpSuffix      = ".tmp"
)

// Position is a place in the log: a segment and a byte offset in it. Positions order the log:
// every record before a position was appended before every record after it.
type Position struct {
	Seg uint64
	Off int64
}

// Less reports whether p comes before q.
func (p Position) Less(q Position) bool {
	return p.Seg < q.Seg || p.Seg == q.Seg && p.Off < q.Off
}

// Options describe the owner's log. Magic is required; zero fields take the defaults given.
type Options struct {
	// Magic starts every segment file: it names the owner and its format, so a file of another
	// format is never read as records.
	Magic string
	// Prefix and Suffix name segment files around the segment id ["seg-", ".log"].
	Prefix, Suffix string
	// SegmentBytes: a segment is sealed, and the next begun, once it holds this much [64 MiB].
	// A segment is deleted only whole, so smaller ones free disk sooner.
	SegmentBytes int64
	// Preallocate keeps a zero-filled segment ready once the volume calls for it, and reuses
	// the files of deleted segments: writes into allocated, already-written blocks make
	// fdatasync flush data only, several times faster than appends growing a file (measured in
	// docs/logstore.md). It costs up to three segments of disk beyond the data.
	Preallocate bool
	// NoSync skips fsync: a commit survives a crash of the process, not of the machine. For
	// tests and measurements.
	NoSync bool
	// FailStop: after a commit fails, every later one fails with the same error without
	// writing. For owners whose records build on each other, where a record written after a
	// lost one would be replayed out of context. Otherwise the next commit is written where the
	// failed one began, as suits records that stand alone (a spool).
	FailStop bool
	// SetAsideForeign: a file named like a segment that does not start with Magic is renamed
	// to .corrupt and skipped, with an error logged, instead of failing Open. Only for owners
	// whose records stand alone; one whose records build on each other must not skip any.
	SetAsideForeign bool
	// LazyDelay bounds how long records appended with AppendLazy wait for a commit [5ms].
	LazyDelay time.Duration
	// OnCommit, when set, runs on the committer after each commit, failed or not, before a
	// Reader may read what it committed and before its Done closes: owners account for it and
	// make it visible there. It may call Append, AppendLazy and Rewrite; it must not wait for a
	// commit.
	OnCommit func(*Commit)
	// Logger hears of torn tails cut, foreign files and failed writes [slog.Default()].
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.Prefix == "" {
		o.Prefix = "seg-"
	}
	if o.Suffix == "" {
		o.Suffix = ".log"
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = 64 << 20
	}
	if o.LazyDelay == 0 {
		o.LazyDelay = 5 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	switch {
	case o.Magic == "":
		return o, fmt.Errorf("%w: Magic is empty; give the bytes every segment of this owner starts with", ErrInvalidOptions)
	case strings.ContainsAny(o.Prefix+o.Suffix, `/\`):
		return o, fmt.Errorf("%w: Prefix %q and Suffix %q must be plain file name parts", ErrInvalidOptions, o.Prefix, o.Suffix)
	case o.Suffix == tmpSuffix || o.Suffix == baseMark || o.Suffix == checkpointName:
		return o, fmt.Errorf("%w: Suffix %q is a name the log uses itself", ErrInvalidOptions, o.Suffix)
	case o.SegmentBytes < int64(len(o.Magic))+HeaderBytes+1:
		return o, fmt.Errorf("%w: SegmentBytes %d cannot hold a record", ErrInvalidOptions, o.SegmentBytes)
	case o.LazyDelay < 0:
		return o, fmt.Errorf("%w: LazyDelay %v is negative", ErrInvalidOptions, o.LazyDelay)
	}
	return o, nil
}

// Commit is one group commit: the records appended since the previous one, written with one
// write and one fdatasync.
type Commit struct {
	done  chan struct{}
	err   error
	buf   []byte
	base  bool // written by Rewrite: a new segment voiding every older one
	bytes int64
	end   Position
}

// Done is closed once the commit is durable, or failed (Err).
func (c *Commit) Done() <-chan struct{} { return c.done }

// Err is why the commit failed, or nil; read it once Done is closed (or in OnCommit). It wraps
// ErrIO for a failed write, ErrClosed when the Log closed first.
func (c *Commit) Err() error { return c.err }

// Bytes is the size of the commit's frames, written or not; read it once Done is closed.
func (c *Commit) Bytes() int64 { return c.bytes }

// End is the end of the log right after the commit, once it succeeded.
func (c *Commit) End() Position { return c.end }

// closedCh is the Done of commits that never had anything to wait for.
var closedCh = func() chan struct{} { ch := make(chan struct{}); close(ch); return ch }()

func doneCommit(err error) *Commit { return &Commit{done: closedCh, err: err} }

// Log is an open append-only log. Safe for concurrent use.
type Log struct {
	dir  string
	opts Options
	hdr  int64 // len(Magic): where records start in a segment
	log  *slog.Logger
	lock *os.File
	// start is where Open found the first record to read: the checkpoint, or the oldest
	// segment's first record.
	start Position

	mu          sync.Mutex
	group       *Commit   // records being appended, not yet taken by the committer
	queue       []*Commit // groups closed by Rewrite, waiting for the committer in order
	spare       []byte    // buffer of the last committed group, reused
	closed      bool
	killed      bool
	released    bool // the files are closed and the directory unlocked: nothing may touch it
	active      uint64
	durableOff  int64            // committed end of the active segment
	sealed      map[uint64]int64 // sealed segments not yet deleted, and their valid lengths
	bases       map[uint64]bool  // segments written by Rewrite
	size        int64            // bytes of the live segments
	consumed    Position         // DeleteBefore's latest position
	hasConsumed bool
	stopErr     error // FailStop: the failure every later commit repeats
	fault       error // FailCommits
	syncs       int64
	rewrites    int64
	spares      []string // recycled segment files ready for reuse
	reused      int64

	kick          chan struct{}
	lazyKick      chan struct{}
	stop          chan struct{} // closed by Close and Kill
	committerDone chan struct{}

	// Committer-owned.
	f       *os.File // active segment
	fsize   int64
	falloc  bool  // f was preallocated: writes into it need no metadata update
	written int64 // bytes committed since open, to decide when preallocation pays

	// Preparer: keeps one zero-filled segment ready once the committer asks.
	wantPrep chan struct{}
	prepared chan *os.File
	prepDone chan struct{}
	prepN    int

	delMu    sync.Mutex // one DeleteBefore at a time
	lastCkpt Position   // under delMu
}

// Open locks dir (creating it), recovers the segments a previous Log left there, cutting each
// at its first frame that does not check out, and calls replay (when not nil) with every
// intact record from the checkpoint on, in order: payload is valid only during the call. An
// error from replay fails Open. Appends go to the newest segment if it has room, else to a
// new one. The caller must Close (or Kill) the Log.
func Open(dir string, opts Options, replay func(pos Position, payload []byte) error) (*Log, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("appendlog: open: %w", err)
	}
	if dir == "" {
		return nil, fmt.Errorf("appendlog: open: %w: the directory is empty", ErrInvalidOptions)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("appendlog: open: %w: create %s: %w", ErrIO, dir, err)
	}
	lock, err := lockDir(filepath.Join(dir, lockName))
	if err != nil {
		return nil, fmt.Errorf("appendlog: open: %w", err)
	}
	l := &Log{
		dir: dir, opts: opts, hdr: int64(len(opts.Magic)), log: opts.Logger, lock: lock,
		sealed: map[uint64]int64{}, bases: map[uint64]bool{},
		kick: make(chan struct{}, 1), lazyKick: make(chan struct{}, 1), stop: make(chan struct{}),
		committerDone: make(chan struct{}),
		wantPrep:      make(chan struct{}), prepared: make(chan *os.File), prepDone: make(chan struct{}),
	}
	l.group = l.newCommit()
	if err := l.recover(replay); err != nil {
		if l.f != nil {
			_ = l.f.Close()
		}
		_ = unlockDir(lock)
		return nil, fmt.Errorf("appendlog: open %s: %w", dir, err)
	}
	go l.runCommitter()
	if opts.Preallocate {
		go l.runPreparer()
	} else {
		close(l.prepDone)
	}
	return l, nil
}

// newCommit starts a group, on the spare buffer when there is one. Caller holds mu (or owns l).
func (l *Log) newCommit() *Commit {
	c := &Commit{done: make(chan struct{}), buf: l.spare}
	l.spare = nil
	return c
}

func (l *Log) segName(id uint64, base bool) string {
	if base {
		return fmt.Sprintf("%s%016d%s%s", l.opts.Prefix, id, baseMark, l.opts.Suffix)
	}
	return fmt.Sprintf("%s%016d%s", l.opts.Prefix, id, l.opts.Suffix)
}

// segPath is the file of a live segment. Caller holds mu (or owns l).
func (l *Log) segPath(id uint64) string { return filepath.Join(l.dir, l.segName(id, l.bases[id])) }

// parseName reads a segment file name: its id, and whether Rewrite wrote it.
func (l *Log) parseName(name string) (id uint64, base, ok bool) {
	mid, ok := strings.CutPrefix(name, l.opts.Prefix)
	if !ok {
		return 0, false, false
	}
	if mid, ok = strings.CutSuffix(mid, l.opts.Suffix); !ok {
		return 0, false, false
	}
	mid, base = strings.CutSuffix(mid, baseMark)
	id, err := strconv.ParseUint(mid, 10, 64)
	if err != nil || id == 0 {
		return 0, false, false
	}
	return id, base, true
}

// Append adds whole frames (built with AppendFrame, or BeginFrame and FinishFrame) to the
// current group commit and wakes the committer. The returned Commit's Done closes once they
// are durable; frames may be reused at once.
func (l *Log) Append(frames []byte) *Commit { return l.append(frames, true) }

// AppendLazy is Append for records nobody waits for: they are written with the next commit,
// at most LazyDelay later, so a stream of them shares fsyncs with the records others wait for.
func (l *Log) AppendLazy(frames []byte) *Commit { return l.append(frames, false) }

func (l *Log) append(frames []byte, now bool) *Commit {
	if len(frames) == 0 {
		return doneCommit(nil)
	}
	if !checkFrames(frames) {
		return doneCommit(fmt.Errorf("appendlog: append: %w", ErrInvalidFrames))
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return doneCommit(fmt.Errorf("appendlog: append: %w", ErrClosed))
	}
	g := l.group
	g.buf = append(g.buf, frames...)
	l.mu.Unlock()
	if now {
		l.Kick()
	} else {
		select {
		case l.lazyKick <- struct{}{}:
		default:
		}
	}
	return g
}

// Kick makes the committer commit what was appended (lazily too) now.
func (l *Log) Kick() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Rewrite replaces the whole log with frames, which must hold everything the owner needs of
// the records appended so far, those not yet committed included: a snapshot of its state.
// The frames go to a new segment, and once it is durable every older segment is deleted; a
// crash in between leaves the older ones, which Open then deletes. The returned Commit is also
// that of the records appended before the call and not yet committed, whom the frames stand
// for. Positions from before a Rewrite are void: it is for owners that replay the whole log,
// not for those reading it with a Reader and DeleteBefore.
func (l *Log) Rewrite(frames []byte) *Commit {
	if !checkFrames(frames) {
		return doneCommit(fmt.Errorf("appendlog: rewrite: %w", ErrInvalidFrames))
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return doneCommit(fmt.Errorf("appendlog: rewrite: %w", ErrClosed))
	}
	g := l.group
	g.buf = append(g.buf[:0], frames...)
	g.base = true
	l.queue = append(l.queue, g)
	l.group = l.newCommit()
	l.mu.Unlock()
	l.Kick()
	return g
}

// FailCommits makes every commit from now on fail with err (wrapped in ErrIO) without writing,
// as a failing disk would; nil ends it. It lets owners test what they do when the disk fails.
func (l *Log) FailCommits(err error) {
	l.mu.Lock()
	l.fault = err
	l.mu.Unlock()
}

// End is where the committed records end: every record committed so far lies before it.
func (l *Log) End() Position {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Position{Seg: l.active, Off: l.durableOff}
}

// Start is where Open found the first record to read: the checkpoint DeleteBefore saved, or
// the oldest segment's first record.
func (l *Log) Start() Position { return l.start }

// Normalize moves p past the ends of sealed segments (and past segments that are gone) to the
// next record's position, so positions that stand for the same place in the log compare
// equal.
func (l *Log) Normalize(p Position) Position {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.normalized(p)
}

// normalized is Normalize. Caller holds mu.
func (l *Log) normalized(p Position) Position {
	p.Off = max(p.Off, l.hdr)
	for {
		if p.Seg == l.active {
			return p
		}
		if p.Seg > l.active {
			return Position{Seg: l.active, Off: l.durableOff} // past the end: the end
		}
		if n, ok := l.sealed[p.Seg]; ok && p.Off < n {
			return p
		}
		p = Position{Seg: l.nextSeg(p.Seg), Off: l.hdr}
	}
}

// limitOf is how far segment seg may be read: its committed end. Caller holds mu.
func (l *Log) limitOf(seg uint64) int64 {
	if seg == l.active {
		return l.durableOff
	}
	return l.sealed[seg]
}

// nextSeg is the first segment after seg that exists. Caller holds mu.
func (l *Log) nextSeg(seg uint64) uint64 {
	next := l.active
	for id := range l.sealed {
		if id > seg && id < next {
			next = id
		}
	}
	return next
}

// Stats is a snapshot of the log, for owners' metrics.
type Stats struct {
	// Syncs counts commits made durable with an fdatasync (none with NoSync): fewer syncs than
	// appends is group commit at work.
	Syncs int64
	// Bytes is the size of the live segments; Segments how many there are.
	Bytes    int64
	Segments int
	// Rewrites counts Rewrites committed; Reused the recycled segment files put back to use.
	Rewrites int64
	Reused   int64
}

// Stats returns a snapshot; safe at any time.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{Syncs: l.syncs, Bytes: l.size, Segments: len(l.sealed) + 1, Rewrites: l.rewrites, Reused: l.reused}
}

// Close commits what was appended, stops the committer and releases the directory. When the
// owner had consumed every record (DeleteBefore), every segment is deleted, so a clean stop
// leaves no segment behind. Appends after Close fail with ErrClosed. Safe to call twice.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	close(l.stop)
	<-l.committerDone
	<-l.prepDone
	l.failPending()
	var errs []error
	if err := l.f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("%w: close %s: %w", ErrIO, l.f.Name(), err))
	}
	l.delMu.Lock()
	l.mu.Lock()
	end := Position{Seg: l.active, Off: l.durableOff}
	drained := l.hasConsumed && !l.normalized(l.consumed).Less(end)
	var paths []string
	if drained {
		for id := range l.sealed {
			paths = append(paths, l.segPath(id))
		}
		paths = append(paths, l.segPath(l.active))
	}
	paths = append(paths, l.spares...)
	l.spares = nil
	l.released = true
	l.mu.Unlock()
	for _, p := range paths {
		_ = os.Remove(p)
	}
	if drained {
		// The next Log begins after this one's segments, never reusing an id.
		l.writeCheckpoint(Position{Seg: end.Seg, Off: l.hdr})
	}
	l.delMu.Unlock()
	if err := unlockDir(l.lock); err != nil {
		errs = append(errs, fmt.Errorf("%w: unlock %s: %w", ErrIO, l.dir, err))
	}
	return errors.Join(errs...)
}

// Kill stops the Log the way SIGKILL would: records appended and not yet committed are lost
// (their Commits fail with ErrClosed, without OnCommit), nothing is cleaned up, files are
// closed and the directory released. For owners' crash tests, and for an owner that must stop
// at once.
func (l *Log) Kill() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed, l.killed = true, true
	l.mu.Unlock()
	close(l.stop)
	<-l.committerDone
	<-l.prepDone
	l.failPending()
	l.delMu.Lock()
	l.mu.Lock()
	l.released = true
	l.mu.Unlock()
	l.delMu.Unlock()
	_ = l.f.Close()
	_ = unlockDir(l.lock)
}

// failPending fails the groups the committer will never take.
func (l *Log) failPending() {
	l.mu.Lock()
	gs := append(l.queue, l.group)
	l.queue, l.group = nil, &Commit{done: make(chan struct{})}
	l.mu.Unlock()
	for _, g := range gs {
		g.bytes = int64(len(g.buf))
		g.err = fmt.Errorf("appendlog: %w before the records were committed", ErrClosed)
		g.buf = nil
		close(g.done)
	}
}
