package appendlog

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// recover scans the segments left in the directory, from the checkpoint on, cuts each at its
// first frame that does not check out, and opens the active segment.
func (l *Log) recover(replay func(Position, []byte) error) error {
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("%w: read the directory: %w", ErrIO, err)
	}
	type segFile struct {
		id   uint64
		base bool
	}
	var segs []segFile
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, tmpSuffix) {
			// A preallocated, recycled or rewritten file a crash left unfinished.
			_ = os.Remove(filepath.Join(l.dir, name))
			continue
		}
		if id, base, ok := l.parseName(name); ok && !e.IsDir() {
			segs = append(segs, segFile{id, base})
		}
	}
	slices.SortFunc(segs, func(a, b segFile) int { return cmp.Compare(a.id, b.id) })
	// The newest base voids everything before it: a crash between its rename and the
	// deletions left them behind.
	for i := len(segs) - 1; i > 0; i-- {
		if segs[i].base {
			for _, s := range segs[:i] {
				if err := os.Remove(filepath.Join(l.dir, l.segName(s.id, s.base))); err != nil {
					return fmt.Errorf("%w: remove a segment older than a rewrite: %w", ErrIO, err)
				}
			}
			segs = segs[i:]
			break
		}
	}

	ckpt, hasCkpt := l.readCheckpoint()
	next := uint64(1)
	if hasCkpt {
		next = ckpt.Seg + 1
		l.consumed, l.hasConsumed, l.lastCkpt = ckpt, true, ckpt
	}
	if len(segs) > 0 {
		next = max(next, segs[len(segs)-1].id+1)
	}
	l.start = Position{Seg: next, Off: l.hdr}
	first := true
	var last uint64 // the newest segment kept
	for _, s := range segs {
		path := filepath.Join(l.dir, l.segName(s.id, s.base))
		if hasCkpt && s.id < ckpt.Seg {
			// Consumed before the previous Log stopped; its deletion did not happen.
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("%w: remove a consumed segment: %w", ErrIO, err)
			}
			continue
		}
		from := l.hdr
		if hasCkpt && s.id == ckpt.Seg {
			from = ckpt.Off
		}
		valid, ok, err := l.scanSegment(path, s.id, from, replay)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		l.sealed[s.id] = valid
		if s.base {
			l.bases[s.id] = true
		}
		l.size += valid
		if first {
			l.start = Position{Seg: s.id, Off: min(from, valid)}
			first = false
		}
		last = s.id
	}
	// Appends go on in the newest segment when it has room: a restart does not leave a file
	// behind each time.
	if last != 0 && last+1 == next && l.sealed[last] < l.opts.SegmentBytes {
		f, err := os.OpenFile(l.segPath(last), os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("%w: open the newest segment: %w", ErrIO, err)
		}
		l.f, l.fsize = f, l.sealed[last]
		l.active, l.durableOff = last, l.fsize
		delete(l.sealed, last)
		return nil
	}
	f, err := l.createSegment(next)
	if err != nil {
		return err
	}
	l.f, l.fsize = f, l.hdr
	l.active, l.durableOff = next, l.hdr
	l.size += l.hdr
	return nil
}

// scanSegment checks the frames of one segment from offset from, passes each to replay,
// truncates the file after the last good one, and reports its valid length. ok is false when
// the file is not a segment after all (then it was removed or set aside).
func (l *Log) scanSegment(path string, id uint64, from int64, replay func(Position, []byte) error) (valid int64, ok bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, false, fmt.Errorf("%w: open segment: %w", ErrIO, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, false, fmt.Errorf("%w: stat segment: %w", ErrIO, err)
	}
	size := st.Size()
	magic := make([]byte, l.hdr)
	if n, _ := io.ReadFull(f, magic); int64(n) != l.hdr || string(magic) != l.opts.Magic {
		switch {
		case size < l.hdr && bytes.HasPrefix([]byte(l.opts.Magic), magic[:n]):
			// Created by a process killed before its header landed: nothing was ever in it.
			_ = f.Close()
			return 0, false, os.Remove(path)
		case !l.opts.SetAsideForeign:
			return 0, false, fmt.Errorf("%w: %s does not start with %q: it is not a segment of this log; move it aside", ErrCorrupt, path, l.opts.Magic)
		}
		l.log.Error("appendlog: file is not a segment; set aside as .corrupt", "file", path)
		_ = f.Close()
		return 0, false, os.Rename(path, path+".corrupt")
	}
	if from > size {
		l.log.Warn("appendlog: checkpoint is past the end of its segment; the file system lost data", "file", path, "size", size, "checkpoint", from)
		from = size
	}
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return 0, false, fmt.Errorf("%w: seek segment: %w", ErrIO, err)
	}
	r := bufio.NewReaderSize(f, 1<<20)
	off := from
	hdr := make([]byte, HeaderBytes)
	var payload []byte
	var why error
	stale := false
	for off < size {
		if _, err := io.ReadFull(r, hdr); err != nil {
			why = errors.New("frame header cut short")
			break
		}
		length, sum := binary.LittleEndian.Uint32(hdr), binary.LittleEndian.Uint32(hdr[4:])
		if seg := frameSeg(hdr); seg != uint32(id) {
			// A frame of an earlier life of a recycled file (or zeros): this segment ends.
			stale, why = seg != 0, fmt.Errorf("frame of segment %d", seg)
			break
		}
		if length == 0 || length > MaxPayloadBytes || off+HeaderBytes+int64(length) > size {
			why = fmt.Errorf("frame length %d does not fit", length)
			break
		}
		if cap(payload) < int(length) {
			payload = make([]byte, length)
		}
		payload = payload[:length]
		if _, err := io.ReadFull(r, payload); err != nil {
			why = errors.New("frame cut short")
			break
		}
		if crc32.Checksum(payload, castagnoli) != sum {
			why = errors.New("checksum mismatch")
			break
		}
		if replay != nil {
			if err := replay(Position{Seg: id, Off: off}, payload); err != nil {
				return 0, false, fmt.Errorf("replay %s at byte %d: %w", filepath.Base(path), off, err)
			}
		}
		off += HeaderBytes + int64(length)
	}
	if off < size {
		if zero, _ := allZero(f, off, size); zero || stale {
			// The unused end of a preallocated or recycled segment: nothing was torn.
			l.log.Debug("appendlog: trimmed the unused end of a preallocated segment", "file", path, "bytes", size-off)
		} else {
			l.log.Warn("appendlog: cut a torn tail off a segment (records there were never committed)",
				"file", path, "offset", off, "bytes", size-off, "reason", why)
		}
		if err := f.Truncate(off); err != nil {
			return 0, false, fmt.Errorf("%w: cut the torn tail of %s: %w", ErrIO, path, err)
		}
	}
	return off, true, nil
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

func (l *Log) readCheckpoint() (Position, bool) {
	b, err := os.ReadFile(filepath.Join(l.dir, checkpointName))
	if err != nil || len(b) != 20 || crc32.Checksum(b[:16], castagnoli) != binary.LittleEndian.Uint32(b[16:]) {
		if err == nil {
			l.log.Warn("appendlog: checkpoint is damaged; reading every segment from its start", "dir", l.dir)
		}
		return Position{}, false
	}
	p := Position{Seg: binary.LittleEndian.Uint64(b), Off: int64(binary.LittleEndian.Uint64(b[8:]))}
	if p.Off < l.hdr {
		return Position{}, false
	}
	return p, true
}
