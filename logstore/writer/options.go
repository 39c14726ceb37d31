package writer

import (
	"fmt"
	"log/slog"
	"time"
)

// Defaults of Options, sized for ClickHouse: it wants 10k–100k rows per insert and about one
// insert per second per table.
const (
	DefaultBatchRows     = 50_000
	DefaultFlushInterval = time.Second
	DefaultMaxSpoolBytes = 1 << 30
	DefaultBackoffMin    = 100 * time.Millisecond
	DefaultBackoffMax    = 30 * time.Second
	DefaultInsertTimeout = time.Minute
	// maxSegmentBytes caps the default segment size: a segment is deleted only whole, so a
	// smaller one frees disk sooner after a backlog.
	maxSegmentBytes = 64 << 20
	minSegmentBytes = 4 << 10
)

// Options configure a Writer. Zero fields take the defaults documented on each field.
type Options struct {
	// SpoolDir holds the spool's segment files; required. It must be private to one Writer
	// (a lock file enforces it) and should be on a local disk: rows are acknowledged once they
	// are fsynced there.
	SpoolDir string
	// BatchRows is how many rows make an insert; a batch is sent as soon as this many are
	// spooled. Default 50,000.
	BatchRows int
	// FlushInterval is the longest a spooled row waits for a batch to fill before it is sent
	// anyway. Default 1 s.
	FlushInterval time.Duration
	// MaxSpoolBytes bounds the spooled rows not yet inserted; at this size Write blocks until
	// inserts free space (back-pressure) instead of growing memory or dropping rows. Beyond it
	// the disk holds up to four segment files: the one being filled, one prepared, and two of
	// inserted rows kept for reuse. Default 1 GiB.
	MaxSpoolBytes int64
	// SegmentBytes is the size at which a segment file is closed and a new one begun. Default
	// MaxSpoolBytes/16, between 4 KiB and 64 MiB.
	SegmentBytes int64
	// BackoffMin and BackoffMax bound the wait between retries of a failed insert: it doubles
	// from BackoffMin up to BackoffMax, with jitter. Defaults 100 ms and 30 s.
	BackoffMin, BackoffMax time.Duration
	// InsertTimeout bounds one insert, so a store that hangs is retried rather than waited on
	// for ever. Default 1 min.
	InsertTimeout time.Duration
	// Logger receives retries, recoveries and cut torn tails. Default slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns o with every zero field set to its default, and an error wrapping
// ErrInvalidOptions naming the first field out of range.
func (o Options) WithDefaults() (Options, error) {
	if o.BatchRows == 0 {
		o.BatchRows = DefaultBatchRows
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.MaxSpoolBytes == 0 {
		o.MaxSpoolBytes = DefaultMaxSpoolBytes
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = min(max(o.MaxSpoolBytes/16, minSegmentBytes), maxSegmentBytes)
	}
	if o.BackoffMin == 0 {
		o.BackoffMin = DefaultBackoffMin
	}
	if o.BackoffMax == 0 {
		o.BackoffMax = max(DefaultBackoffMax, o.BackoffMin)
	}
	if o.InsertTimeout == 0 {
		o.InsertTimeout = DefaultInsertTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, o.validate()
}

func (o Options) validate() error {
	switch {
	case o.SpoolDir == "":
		return fmt.Errorf("%w: SpoolDir is empty; give a directory on a local disk, private to this writer", ErrInvalidOptions)
	case o.BatchRows < 0:
		return fmt.Errorf("%w: BatchRows is %d; use a positive number, or 0 for %d", ErrInvalidOptions, o.BatchRows, DefaultBatchRows)
	case o.FlushInterval < 0:
		return fmt.Errorf("%w: FlushInterval is %v; use a positive duration, or 0 for %v", ErrInvalidOptions, o.FlushInterval, DefaultFlushInterval)
	case o.MaxSpoolBytes < 0:
		return fmt.Errorf("%w: MaxSpoolBytes is %d; use a positive size, or 0 for 1 GiB", ErrInvalidOptions, o.MaxSpoolBytes)
	case o.SegmentBytes < 0:
		return fmt.Errorf("%w: SegmentBytes is %d; use a positive size, or 0 for the default", ErrInvalidOptions, o.SegmentBytes)
	case o.BackoffMin < 0:
		return fmt.Errorf("%w: BackoffMin is %v; use a positive duration, or 0 for %v", ErrInvalidOptions, o.BackoffMin, DefaultBackoffMin)
	case o.BackoffMax < o.BackoffMin:
		return fmt.Errorf("%w: BackoffMax %v is below BackoffMin %v", ErrInvalidOptions, o.BackoffMax, o.BackoffMin)
	case o.InsertTimeout < 0:
		return fmt.Errorf("%w: InsertTimeout is %v; use a positive duration, or 0 for %v", ErrInvalidOptions, o.InsertTimeout, DefaultInsertTimeout)
	}
	return nil
}
