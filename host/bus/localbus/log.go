package localbus

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"
)

// File names in the directory.
const (
	logName  = "bus.log"
	tmpName  = "bus.log.compact"
	lockName = "LOCK"
)

// batch is one group commit: the records appended since the previous one. done is closed once
// they are on disk (or failed: err).
type batch struct {
	done chan struct{}
	err  error
	// published holds, per topic, the sequence after the last message of this batch: consumers
	// may see messages below it once the batch is durable.
	published map[*topic]uint64
}

func newBatch() *batch { return &batch{done: make(chan struct{}), published: map[*topic]uint64{}} }

// openLog opens (creating when missing) the log file and returns it positioned for appending,
// after replaying every intact record through apply. A torn or corrupt tail is cut off.
func (b *Bus) openLog() error {
	path := filepath.Join(b.dir, logName)
	// A compaction that crashed before its rename left a partial snapshot: the log is intact.
	if err := os.Remove(filepath.Join(b.dir, tmpName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: remove the unfinished compaction: %w", ErrIO, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return fmt.Errorf("%w: open %s: %w", ErrIO, path, err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("%w: stat %s: %w", ErrIO, path, err)
	}
	if st.Size() == 0 {
		if _, err := f.Write([]byte(logHeader)); err != nil {
			_ = f.Close()
			return fmt.Errorf("%w: write the log header: %w", ErrIO, err)
		}
		if err := b.syncFile(f); err != nil {
			_ = f.Close()
			return err
		}
		if err := syncDir(b.dir); err != nil {
			_ = f.Close()
			return err
		}
		b.file, b.fileSize = f, int64(len(logHeader))
		return nil
	}
	end, err := b.replay(f, path)
	if err != nil {
		_ = f.Close()
		return err
	}
	if end < st.Size() {
		b.opts.Logger.Warn("localbus: cut off a torn log tail", "file", path, "kept", end, "dropped", st.Size()-end)
		if err := f.Truncate(end); err != nil {
			_ = f.Close()
			return fmt.Errorf("%w: cut the torn tail of %s: %w", ErrIO, path, err)
		}
		if err := b.syncFile(f); err != nil {
			_ = f.Close()
			return err
		}
	}
	if _, err := f.Seek(end, io.SeekStart); err != nil {
		_ = f.Close()
		return fmt.Errorf("%w: seek %s: %w", ErrIO, path, err)
	}
	b.file, b.fileSize = f, end
	return nil
}

// replay applies every intact record of the log and returns the offset after the last one.
func (b *Bus) replay(f *os.File, path string) (int64, error) {
	rd := bufio.NewReaderSize(f, 1<<20)
	head := make([]byte, len(logHeader))
	if _, err := io.ReadFull(rd, head); err != nil || string(head) != logHeader {
		return 0, fmt.Errorf("%w: %s does not start with the bus log header; move it aside to start afresh", ErrCorrupt, path)
	}
	off := int64(len(logHeader))
	var fh [frameBytes]byte
	var rec []byte
	for {
		if _, err := io.ReadFull(rd, fh[:]); err != nil {
			return off, nil // end of log, or a torn frame header
		}
		n := binary.LittleEndian.Uint32(fh[:])
		if n == 0 || n > maxRecord {
			return off, nil
		}
		if cap(rec) < int(n) {
			rec = make([]byte, n)
		}
		rec = rec[:n]
		if _, err := io.ReadFull(rd, rec); err != nil {
			return off, nil
		}
		if crc32.Checksum(rec, castagnoli) != binary.LittleEndian.Uint32(fh[4:]) {
			return off, nil // checksum mismatch: the tail was torn mid-record
		}
		if err := b.apply(rec); err != nil {
			return 0, corrupt(off, rec[0], err)
		}
		off += frameBytes + int64(n)
	}
}

// writeLoop is the group committer: it takes every record appended since the last round,
// writes them with one write and one fsync, then makes the batch's messages visible and wakes
// its publishers. It compacts the log when it has grown enough.
func (b *Bus) writeLoop() {
	defer close(b.writerDone)
	var lazy <-chan time.Time
	for {
		select {
		case <-b.kick:
		case <-b.lazyKick:
			if lazy == nil {
				lazy = time.After(lazyDelay)
			}
			continue
		case <-lazy:
		case <-b.stopWriter:
			b.commitRound() // what was appended before Close
			return
		case <-b.crashWriter:
			return
		}
		lazy = nil
		b.commitRound()
	}
}

// lazyDelay bounds how long deliveries and acks wait for a commit when no Publish comes to
// carry them: losing them in a crash costs a redelivery, not a message.
const lazyDelay = 5 * time.Millisecond

// commitRound writes and syncs the current batch (or a snapshot that includes it).
func (b *Bus) commitRound() {
	b.mu.Lock()
	if len(b.buf) == 0 && len(b.cur.published) == 0 {
		b.mu.Unlock()
		return
	}
	buf, bt := b.buf, b.cur
	b.buf, b.cur = b.spare[:0], newBatch()
	var snap []byte
	if b.ioErr == nil && b.fileSize+int64(len(buf)) > b.opts.CompactBytes && b.fileSize+int64(len(buf)) > 3*b.liveBytes() {
		snap = b.snapshot()
	}
	failed := b.ioErr
	b.mu.Unlock()

	err := failed
	if err == nil {
		if snap != nil {
			err = b.compact(snap, int64(len(buf)))
		} else {
			err = b.appendSync(buf)
		}
	}
	b.mu.Lock()
	if err != nil && b.ioErr == nil {
		b.ioErr = err
		b.opts.Logger.Error("localbus: the log cannot be written; the bus refuses writes until reopened", "dir", b.dir, "err", err)
	}
	bt.err = b.ioErr
	if bt.err == nil {
		for t, next := range bt.published {
			if next > t.durable {
				t.durable = next
				t.wakeAll()
			}
		}
	}
	b.spare = buf[:0]
	b.mu.Unlock()
	close(bt.done)
}

func (b *Bus) appendSync(buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	if _, err := b.file.Write(buf); err != nil {
		return fmt.Errorf("%w: append to the log: %w", ErrIO, err)
	}
	b.fileSize += int64(len(buf))
	return b.syncFile(b.file)
}

// compact writes snap (the whole live state) as a new log and swaps it in. The batch being
// committed is part of snap, so its own bytes are not written.
func (b *Bus) compact(snap []byte, skipped int64) error {
	start := time.Now()
	tmp := filepath.Join(b.dir, tmpName)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o640)
	if err != nil {
		return fmt.Errorf("%w: create %s: %w", ErrIO, tmp, err)
	}
	if _, err := f.Write(snap); err != nil {
		_ = f.Close()
		return fmt.Errorf("%w: write %s: %w", ErrIO, tmp, err)
	}
	if err := b.syncFile(f); err != nil {
		_ = f.Close()
		return err
	}
	if err := os.Rename(tmp, filepath.Join(b.dir, logName)); err != nil {
		_ = f.Close()
		return fmt.Errorf("%w: replace the log with its compaction: %w", ErrIO, err)
	}
	if err := syncDir(b.dir); err != nil {
		_ = f.Close()
		return err
	}
	old := b.fileSize + skipped
	_ = b.file.Close()
	b.file, b.fileSize = f, int64(len(snap))
	b.compactions.Add(1)
	b.opts.Logger.Debug("localbus: compacted the log", "dir", b.dir, "from", old, "to", len(snap), "took", time.Since(start))
	return nil
}

func (b *Bus) syncFile(f *os.File) error {
	if b.opts.NoSync {
		return nil
	}
	b.syncs.Add(1)
	if err := fdatasync(f); err != nil {
		return fmt.Errorf("%w: sync %s: %w", ErrIO, f.Name(), err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("%w: open %s to sync it: %w", ErrIO, dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("%w: sync %s: %w", ErrIO, dir, err)
	}
	return nil
}
