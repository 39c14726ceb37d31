package appendlog

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// A frame is one record as it lies in a segment:
//
//	u32 LE payload length | u32 LE CRC-32C of the payload | u32 LE segment id | payload
//
// The segment id (its low 32 bits) is stamped when the frame is committed to a segment: it
// tells this segment's frames from the stale ones of an earlier life of a recycled file, which
// would otherwise pass their checksum. A zero length is never written, so the zero-filled end
// of a preallocated segment is never read as a frame. (This is the layout the log writer's
// spool has always used, so its old segments read as they are.)
const (
	// HeaderBytes is the length of a frame's header: a payload starts this far into its frame.
	HeaderBytes = 12
	// MaxPayloadBytes is far above any record an owner writes; a header claiming more is torn,
	// and a corrupt length never makes recovery allocate gigabytes.
	MaxPayloadBytes = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// AppendFrame appends one frame holding payload to dst. The payload must not be empty.
func AppendFrame(dst, payload []byte) []byte {
	dst, start := BeginFrame(dst)
	dst = append(dst, payload...)
	return FinishFrame(dst, start)
}

// BeginFrame reserves a frame header at the end of dst and returns where the frame starts:
// append the payload to the returned slice, then call FinishFrame. It lets an owner encode its
// payload straight into the frame instead of copying it.
func BeginFrame(dst []byte) ([]byte, int) {
	start := len(dst)
	return append(dst, make([]byte, HeaderBytes)...), start
}

// FinishFrame fills the header of the frame begun at start, now that its payload (everything
// after the header) is in buf.
func FinishFrame(buf []byte, start int) []byte {
	payload := buf[start+HeaderBytes:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(payload, castagnoli))
	return buf
}

// FrameLen is the whole length (header and payload) of the frame b starts with, read from its
// header and not checked: for an owner walking frames it built itself.
func FrameLen(b []byte) int { return HeaderBytes + int(binary.LittleEndian.Uint32(b)) }

// ParseFrame checks the frame b starts with and returns its payload and whole length. It fails
// with ErrCorrupt when b does not start with a whole frame whose payload matches its checksum.
func ParseFrame(b []byte) (payload []byte, n int, err error) {
	if len(b) < HeaderBytes {
		return nil, 0, fmt.Errorf("%w: frame header cut short", ErrCorrupt)
	}
	length, sum := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:])
	if length == 0 || length > MaxPayloadBytes || int64(length) > int64(len(b)-HeaderBytes) {
		return nil, 0, fmt.Errorf("%w: frame length %d does not fit", ErrCorrupt, length)
	}
	n = HeaderBytes + int(length)
	payload = b[HeaderBytes:n:n]
	if crc32.Checksum(payload, castagnoli) != sum {
		return nil, 0, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	return payload, n, nil
}

// frameSeg is the segment id a frame header was stamped with.
func frameSeg(h []byte) uint32 { return binary.LittleEndian.Uint32(h[8:]) }

// stampSeg writes the segment id into every frame header of frames, whole frames back to back
// (checkFrames made sure of it).
func stampSeg(frames []byte, seg uint64) {
	for off := 0; off < len(frames); off += FrameLen(frames[off:]) {
		binary.LittleEndian.PutUint32(frames[off+8:], uint32(seg))
	}
}

// checkFrames reports whether frames is whole, non-empty frames back to back. Only headers are
// read: the checksums are the owner's own work, computed a moment ago.
func checkFrames(frames []byte) bool {
	off := 0
	for off < len(frames) {
		if len(frames)-off < HeaderBytes {
			return false
		}
		length := binary.LittleEndian.Uint32(frames[off:])
		if length == 0 || length > MaxPayloadBytes || int64(length) > int64(len(frames)-off-HeaderBytes) {
			return false
		}
		off += HeaderBytes + int(length)
	}
	return true
}
