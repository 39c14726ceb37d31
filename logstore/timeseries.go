package logstore

import "time"

// Span is what a time series covers: n whole buckets from start to end, each starting at a
// multiple of Bucket since the Unix epoch, the first the one that holds Start and the last the
// one that holds the last millisecond before End. Every backend buckets by it, so bucket starts
// read as clock times ("10:15:00", a day bucket at midnight UTC) whatever Start a caller passes
// (often "now minus 6h"), and every host and backend agrees on them. The series counts the nodes
// created in the whole of each bucket, so its first and last buckets may reach outside
// [Start, End). q must be valid (Validate); a zero Bucket gives n = 0.
func (q TimeSeriesQuery) Span() (start, end time.Time, n int) {
	width := q.Bucket.Milliseconds()
	if width <= 0 {
		return q.Start, q.End, 0
	}
	first := floorDiv(q.Start.UnixMilli(), width) * width
	// The last millisecond before End (UnixMilli rounds down): End itself is excluded, but an
	// End a fraction past a whole millisecond leaves that millisecond inside the range.
	lastMS := q.End.UnixMilli() - 1
	if q.End.Nanosecond()%int(time.Millisecond) != 0 {
		lastMS++
	}
	last := floorDiv(lastMS, width) * width
	n = int((last-first)/width) + 1
	return time.UnixMilli(first).UTC(), time.UnixMilli(last + width).UTC(), n
}

// floorDiv divides rounding toward minus infinity, so times before 1970 fall in the bucket
// that holds them, not the next one.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
