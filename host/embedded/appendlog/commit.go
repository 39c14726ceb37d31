package appendlog

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// createSegment creates segment id holding only the magic, durably (file and directory entry).
func (l *Log) createSegment(id uint64) (*os.File, error) {
	path := filepath.Join(l.dir, l.segName(id, false))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, fmt.Errorf("%w: create segment: %w", ErrIO, err)
	}
	_, err = f.WriteString(l.opts.Magic)
	if err == nil {
		err = l.sync(f)
	}
	if err == nil {
		err = l.syncDir()
	}
	if err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("%w: create segment: %w", ErrIO, err)
	}
	return f, nil
}

func (l *Log) sync(f *os.File) error {
	if l.opts.NoSync {
		return nil
	}
	return f.Sync()
}

func (l *Log) syncDir() error {
	if l.opts.NoSync {
		return nil
	}
	d, err := os.Open(l.dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// runCommitter commits groups until Close (which commits what is left) or Kill (which does not).
func (l *Log) runCommitter() {
	defer close(l.committerDone)
	var lazy <-chan time.Time
	for {
		stopping := false
		select {
		case <-l.kick:
		case <-l.lazyKick:
			if lazy == nil {
				lazy = time.After(l.opts.LazyDelay)
			}
			continue
		case <-lazy:
		case <-l.stop:
			l.mu.Lock()
			killed := l.killed
			l.mu.Unlock()
			if killed {
				return
			}
			stopping = true
		}
		lazy = nil
		l.commitRound()
		if stopping {
			return
		}
	}
}

// commitRound commits the groups Rewrite queued and the current one, in order.
func (l *Log) commitRound() {
	l.mu.Lock()
	gs := l.queue
	l.queue = nil
	if len(l.group.buf) > 0 {
		gs = append(gs, l.group)
		l.group = l.newCommit()
	}
	l.mu.Unlock()
	for _, g := range gs {
		g.bytes = int64(len(g.buf))
		if g.base {
			l.commitBase(g)
		} else {
			l.commit(g)
		}
	}
}

// failure is why the next commit must fail without writing, if it must.
func (l *Log) failure() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopErr != nil {
		return l.stopErr
	}
	if l.fault != nil {
		return fmt.Errorf("%w: %w", ErrIO, l.fault)
	}
	return nil
}

// commit makes one group durable: one write, one fdatasync, then a new segment if this one is
// full. On failure the bytes after the last good frame are cut, so the next frame starts clean
// and a reader never meets a half-written one before a good one.
func (l *Log) commit(g *Commit) {
	if err := l.failure(); err != nil {
		l.fail(g, err)
		return
	}
	good := l.fsize
	stampSeg(g.buf, l.active) // only the committer changes active
	_, err := l.f.WriteAt(g.buf, good)
	if err == nil && !l.opts.NoSync {
		err = datasync(l.f)
	}
	if err != nil {
		// The next group is written at the same offset, over whatever part of this one landed.
		// A preallocated segment keeps its zeros after that; otherwise cut what landed, so a
		// longer torn remainder does not lie after the next frame (recovery would cut it as a
		// torn tail anyway, and readers never read past the committed end).
		if !l.falloc {
			if terr := l.f.Truncate(good); terr != nil {
				l.log.Warn("appendlog: cannot cut a failed write", "err", terr)
			}
		}
		l.fail(g, fmt.Errorf("%w: append to %s: %w", ErrIO, l.f.Name(), err))
		return
	}
	n := int64(len(g.buf))
	l.fsize += n
	l.written += n
	l.mu.Lock()
	l.size += n
	if !l.opts.NoSync {
		l.syncs++
	}
	l.mu.Unlock()
	g.end = Position{Seg: l.active, Off: l.fsize}
	// The owner hears of the commit before Readers may read it, so whatever a Reader returns
	// the owner has accounted for (a spool counts the rows it holds).
	l.notify(g)
	l.mu.Lock()
	l.durableOff = l.fsize
	l.mu.Unlock()
	if l.opts.Preallocate && l.written >= l.prepThreshold() {
		select {
		case l.wantPrep <- struct{}{}:
		default:
		}
	}
	if l.fsize >= l.opts.SegmentBytes {
		l.rotate(nil)
	} else if l.opts.Preallocate && !l.falloc && l.written >= l.prepThreshold() {
		// Leave a growing file for a preallocated one as soon as one is ready: appends to a
		// growing file pay a metadata journal commit on every fdatasync.
		select {
		case f := <-l.prepared:
			l.rotate(f)
		default:
		}
	}
	l.release(g)
}

func (l *Log) fail(g *Commit, err error) {
	g.err = err
	l.mu.Lock()
	if l.opts.FailStop && l.stopErr == nil {
		l.stopErr = err
	}
	l.mu.Unlock()
	l.log.Error("appendlog: a commit failed; its records are not durable", "dir", l.dir, "err", err)
	l.finish(g)
}

// finish tells the owner and the waiters, and keeps the group's buffer for the next one.
func (l *Log) finish(g *Commit) {
	l.notify(g)
	l.release(g)
}

func (l *Log) notify(g *Commit) {
	if l.opts.OnCommit != nil {
		l.opts.OnCommit(g)
	}
}

// release closes the commit's Done and keeps its buffer for the next group.
func (l *Log) release(g *Commit) {
	buf := g.buf
	g.buf = nil
	close(g.done)
	if cap(buf) <= 8<<20 {
		l.mu.Lock()
		l.spare = buf[:0]
		l.mu.Unlock()
	}
}

// commitBase writes a Rewrite's frames as a new segment, through a .tmp file renamed into
// place (the rename is what makes the older segments void), then deletes the older ones.
func (l *Log) commitBase(g *Commit) {
	if err := l.failure(); err != nil {
		l.fail(g, err)
		return
	}
	id := l.active + 1
	tmp := filepath.Join(l.dir, fmt.Sprintf("rewrite-%d%s", id, tmpSuffix))
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o640)
	if err == nil {
		stampSeg(g.buf, id)
		_, err = f.WriteString(l.opts.Magic)
		if err == nil {
			_, err = f.Write(g.buf)
		}
		if err == nil {
			err = l.sync(f)
		}
		if err == nil {
			err = os.Rename(tmp, filepath.Join(l.dir, l.segName(id, true)))
		}
		if err == nil {
			err = l.syncDir()
		}
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}
	if err != nil {
		l.fail(g, fmt.Errorf("%w: rewrite the log: %w", ErrIO, err))
		return
	}
	end := l.hdr + int64(len(g.buf))
	l.mu.Lock()
	var void []string
	for sid := range l.sealed {
		void = append(void, l.segPath(sid))
	}
	void = append(void, l.segPath(l.active))
	l.sealed, l.bases = map[uint64]int64{}, map[uint64]bool{id: true}
	l.active, l.durableOff, l.size = id, end, end
	l.hasConsumed = false
	l.rewrites++
	if !l.opts.NoSync {
		l.syncs++
	}
	g.end = Position{Seg: id, Off: end}
	l.mu.Unlock()
	_ = l.f.Close()
	l.f, l.fsize, l.falloc = f, end, false
	for _, path := range void {
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			l.log.Warn("appendlog: cannot delete a segment older than a rewrite; the next Open does", "err", err)
		}
	}
	l.finish(g)
}

// prepThreshold is how much must be written before segments are preallocated: a log appended
// to little never pays for zero-filling a segment it will not use.
func (l *Log) prepThreshold() int64 { return min(1<<20, l.opts.SegmentBytes/2) }

// rotate seals the active segment and starts the next one: ready (a preallocated file from
// the preparer), or one made now. When none can be had, appends go on into the current one
// and a later commit tries again.
func (l *Log) rotate(ready *os.File) {
	id := l.active
	if ready == nil && l.opts.Preallocate {
		select {
		case ready = <-l.prepared:
		default:
		}
	}
	var f *os.File
	var err error
	falloc := false
	if ready != nil {
		f, err = l.adopt(ready, id+1)
		falloc = err == nil
	}
	if f == nil {
		f, err = l.createSegment(id + 1)
	}
	if err != nil {
		l.log.Error("appendlog: cannot start a new segment; appending to the current one", "err", err)
		return
	}
	old := l.f
	l.mu.Lock()
	l.sealed[id] = l.durableOff
	l.active, l.durableOff = id+1, l.hdr
	l.size += l.hdr
	l.mu.Unlock()
	l.f, l.fsize, l.falloc = f, l.hdr, falloc
	_ = old.Close()
}

// adopt renames a prepared file to segment id, durably. On failure the file is discarded.
func (l *Log) adopt(f *os.File, id uint64) (*os.File, error) {
	err := os.Rename(f.Name(), filepath.Join(l.dir, l.segName(id, false)))
	if err == nil {
		err = l.syncDir()
	}
	if err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return nil, fmt.Errorf("%w: adopt a preallocated segment: %w", ErrIO, err)
	}
	return f, nil
}
