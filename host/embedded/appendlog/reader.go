package appendlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
)

// readChunkBytes is how much of a segment a Reader reads at once.
const readChunkBytes = 4 << 20

// Reader reads committed records from a position on while appends go on: an owner that
// consumes its log as it grows (a spool). Not safe for concurrent use.
type Reader struct {
	l        *Log
	pos      Position
	f        *os.File // segment being read
	fseg     uint64
	chunk    []byte // bytes of f from chunkOff, never modified: payloads alias them
	chunkOff int64
	next     int64 // what Advance moves past
}

// NewReader returns a Reader at from (Start, or a position the owner kept).
func (l *Log) NewReader(from Position) *Reader { return &Reader{l: l, pos: from} }

// Pos is the reader's position: where the record Next returns lies.
func (r *Reader) Pos() Position { return r.pos }

// Next returns the payload of the committed record at the reader's position, without moving
// past it (Advance does), or io.EOF when every committed record has been read. The payload
// aliases a buffer that is never modified or reused, so it stays valid. Committed bytes that
// do not check out (a failing disk: a crash never damages what was committed) are an error
// wrapping ErrCorrupt, and Advance then skips the rest of what is committed in that segment;
// other errors wrap ErrIO and leave the position as it is.
func (r *Reader) Next() ([]byte, error) {
	r.next = 0
	r.l.mu.Lock()
	r.pos = r.l.normalized(r.pos)
	limit := r.l.limitOf(r.pos.Seg)
	path := r.l.segPath(r.pos.Seg)
	r.l.mu.Unlock()
	if r.pos.Off >= limit {
		return nil, io.EOF
	}
	payload, n, err := r.record(path, limit)
	if errors.Is(err, ErrCorrupt) {
		r.next = limit - r.pos.Off
		return nil, fmt.Errorf("appendlog: read %s at byte %d: %w", filepath.Base(path), r.pos.Off, err)
	}
	if err != nil {
		return nil, fmt.Errorf("appendlog: read %s: %w: %w", filepath.Base(path), ErrIO, err)
	}
	r.next = n
	return payload, nil
}

// Advance moves past the record Next returned (or the corrupt bytes it reported) and says
// by how many bytes.
func (r *Reader) Advance() int64 {
	n := r.next
	r.pos.Off += n
	r.next = 0
	return n
}

// Close closes the segment file the Reader holds open.
func (r *Reader) Close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// record reads and checks the frame at the reader's position, which must end by limit.
func (r *Reader) record(path string, limit int64) ([]byte, int64, error) {
	if r.pos.Off+HeaderBytes > limit {
		return nil, 0, fmt.Errorf("%w: frame header past the committed end", ErrCorrupt)
	}
	hdr, err := r.bytesAt(path, HeaderBytes, limit)
	if err != nil {
		return nil, 0, err
	}
	length, sum := binary.LittleEndian.Uint32(hdr), binary.LittleEndian.Uint32(hdr[4:])
	total := HeaderBytes + int64(length)
	if length == 0 || length > MaxPayloadBytes || r.pos.Off+total > limit {
		return nil, 0, fmt.Errorf("%w: frame length %d does not fit", ErrCorrupt, length)
	}
	if seg := frameSeg(hdr); seg != uint32(r.pos.Seg) {
		return nil, 0, fmt.Errorf("%w: frame stamped for segment %d", ErrCorrupt, seg)
	}
	rec, err := r.bytesAt(path, total, limit)
	if err != nil {
		return nil, 0, err
	}
	payload := rec[HeaderBytes:total:total]
	if crc32.Checksum(payload, castagnoli) != sum {
		return nil, 0, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	return payload, total, nil
}

// bytesAt returns n bytes at the reader's position, from the current chunk or a new one read
// from there (at least n bytes, up to readChunkBytes, never past limit). Chunks are never
// reused: payloads returned earlier may still alias them.
func (r *Reader) bytesAt(path string, n, limit int64) ([]byte, error) {
	if r.f == nil || r.fseg != r.pos.Seg {
		_ = r.Close()
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		r.f, r.fseg, r.chunk = f, r.pos.Seg, nil
	}
	off := r.pos.Off
	if off < r.chunkOff || off+n > r.chunkOff+int64(len(r.chunk)) {
		chunk := make([]byte, min(max(n, readChunkBytes), limit-off))
		if _, err := r.f.ReadAt(chunk, off); err != nil {
			return nil, err
		}
		r.chunk, r.chunkOff = chunk, off
	}
	start := off - r.chunkOff
	return r.chunk[start : start+n : start+n], nil
}
