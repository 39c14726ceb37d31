package signals

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/trellis-run/trellis/host/vocab"
)

// ErrBadID is a Last-Event-ID that is no signal id.
var ErrBadID = vocab.Sentinel(vocab.CodeInvalidArgument, "signals: not a signal id")

// Hub keeps the last signals this host has read from the bus, in bus order, for the SSE stream:
// readers follow it from a position, and a reader that resumes with a Last-Event-ID gets what
// it missed as long as the hub still holds it (a ring of Options.Buffer signals).
type Hub struct {
	mu   sync.Mutex
	ring []Record
	// first is the sequence number of ring's oldest record, next the one the next record gets:
	// ring holds first..next-1 at index seq % len(ring).
	first, next uint64
	wake        chan struct{} // closed and replaced when a record arrives
	done        chan struct{} // closed by Close
	closed      bool
}

// NewHub holds the last size records.
func NewHub(size int) *Hub {
	if size <= 0 {
		size = DefaultBuffer
	}
	return &Hub{ring: make([]Record, size), wake: make(chan struct{}), done: make(chan struct{})}
}

// Add appends a record (the oldest falls off a full ring) and wakes every reader.
func (h *Hub) Add(recs ...Record) {
	if len(recs) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	for _, r := range recs {
		h.ring[h.next%uint64(len(h.ring))] = r
		h.next++
		if h.next-h.first > uint64(len(h.ring)) {
			h.first = h.next - uint64(len(h.ring))
		}
	}
	close(h.wake)
	h.wake = make(chan struct{})
}

// Close ends every reader's Done; records added later are dropped.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
}

// Reader follows the hub from lastID: the records after it that the hub holds, then every new
// one. lastID "" starts at the newest (only what arrives from now on). Gap reports whether
// signals after lastID may be missing (it is older than the oldest the hub holds). A lastID
// that is no signal id is ErrBadID.
func (h *Hub) Reader(lastID string) (r *Reader, gap bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r = &Reader{hub: h, seq: h.next}
	if lastID == "" {
		return r, false, nil
	}
	last, ok := parseID(lastID)
	if !ok {
		return nil, false, vocabErr(lastID)
	}
	if h.first == h.next {
		return r, false, nil // nothing held: nothing to replay, nothing known to be missing
	}
	oldest, _ := parseID(h.at(h.first).ID)
	if last.less(oldest) {
		r.seq = h.first
		return r, true, nil
	}
	// The first held record after lastID (records are in id order).
	lo, hi := h.first, h.next
	for lo < hi {
		mid := lo + (hi-lo)/2
		id, _ := parseID(h.at(mid).ID)
		if last.less(id) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	r.seq = lo
	return r, false, nil
}

func (h *Hub) at(seq uint64) *Record { return &h.ring[seq%uint64(len(h.ring))] }

// Reader is one follower of the hub (one SSE client). Not safe for concurrent use.
type Reader struct {
	hub *Hub
	seq uint64
}

// Next answers up to max records after the reader's position and moves past them; lost is
// true when records fell off the ring before the reader read them (it skips to the oldest
// held). wake is closed when more records arrive; done when the hub closes.
func (r *Reader) Next(max int) (recs []Record, lost bool, wake, done <-chan struct{}) {
	h := r.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.seq < h.first {
		r.seq, lost = h.first, true
	}
	for r.seq < h.next && len(recs) < max {
		recs = append(recs, *h.at(r.seq))
		r.seq++
	}
	return recs, lost, h.wake, h.done
}

// id is a bus message id as the bus orders them: a Redis stream id "ms-seq" or the embedded
// bus's sequence "n" (read as "n-0").
type id struct{ hi, lo uint64 }

func parseID(s string) (id, bool) {
	a, b, dash := strings.Cut(s, "-")
	hi, err := strconv.ParseUint(a, 10, 64)
	if err != nil {
		return id{}, false
	}
	if !dash {
		return id{hi: hi}, true
	}
	lo, err := strconv.ParseUint(b, 10, 64)
	if err != nil {
		return id{}, false
	}
	return id{hi, lo}, true
}

func (a id) less(b id) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

func vocabErr(lastID string) error {
	if len(lastID) > 64 {
		lastID = lastID[:64] + "…"
	}
	return fmt.Errorf("%w: Last-Event-ID %q is not a signal id (the id: of an event this stream sent, such as 1712345678901-0 or 42)", ErrBadID, lastID)
}
