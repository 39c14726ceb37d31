package redisspool

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Defaults of Options. BatchRows and FlushInterval are ClickHouse's: 10k–100k rows per insert,
// about one insert per second per table — per host, as every host drains.
const (
	DefaultGroup         = "drain"
	DefaultBatchRows     = 50_000
	DefaultFlushInterval = time.Second
	DefaultMaxEntries    = 200_000
	DefaultClaimAfter    = time.Minute
	DefaultWriteTimeout  = time.Minute
	DefaultInsertTimeout = time.Minute
	DefaultBackoffMin    = 100 * time.Millisecond
	DefaultBackoffMax    = 10 * time.Second
	DefaultLinger        = 2 * time.Millisecond
	// lingerWrites is how many queued Writes end a group commit's linger at once.
	lingerWrites = 64
	// maxEntryBytes caps one XADD's payloads: a group commit of many Writes is one entry, but
	// not one that makes Redis copy a huge argument around.
	maxEntryBytes = 4 << 20
	// readCount is how many entries one XREADGROUP or XAUTOCLAIM asks for.
	readCount = 256
)

var (
	// ErrInvalidOptions: an Options field is out of range; the message names it.
	ErrInvalidOptions = errors.New("redisspool: invalid options")
	// ErrNotStarted: Write or Flush before Start.
	ErrNotStarted = errors.New("redisspool: not started")
	// ErrStopped: Write after Stop began.
	ErrStopped = errors.New("redisspool: stopped")
	// ErrUnavailable: Redis did not take the rows within WriteTimeout (or the caller's
	// context); they were not acknowledged.
	ErrUnavailable = errors.New("redisspool: Redis unavailable")
)

// Options configure a Spool. Zero fields take the defaults documented on each field.
type Options struct {
	// Key is the stream every host of the cluster shares; required (the host uses the app's
	// Redis prefix + "log:spool").
	Key string
	// Group is the consumer group of the drainers. Default "drain".
	Group string
	// Consumer names this process among the drainers; required and unique per process (the
	// host's instance id).
	Consumer string
	// BatchRows is the most rows one insert carries. Default 50,000.
	BatchRows int
	// FlushInterval is how long a drainer lets rows gather into a batch after the first one
	// arrives. Default 1 s.
	FlushInterval time.Duration
	// MaxEntries bounds the stream: while it holds more entries than this (the store is down
	// and rows pile up), Write waits (back-pressure) rather than grow Redis's memory without
	// bound. Default 200,000 entries (an entry holds the rows of one group commit).
	MaxEntries int64
	// ClaimAfter: entries a drainer read and did not acknowledge for this long are taken over
	// by another (their drainer died). A live drainer retrying a failing store renews its claim,
	// so this only has to exceed a Redis round trip; it decides how soon a dead host's batch is
	// inserted. Default 1 min.
	ClaimAfter time.Duration
	// WriteTimeout bounds how long a Write retries while Redis is unreachable before it reports
	// ErrUnavailable. Default 1 min.
	WriteTimeout time.Duration
	// InsertTimeout bounds one insert, so a hung store is retried rather than waited on.
	// Default 1 min.
	InsertTimeout time.Duration
	// BackoffMin and BackoffMax bound the wait between retries (Redis or the store): doubling,
	// with jitter. Defaults 100 ms and 10 s.
	BackoffMin, BackoffMax time.Duration
	// Linger is how long a group commit waits for more Writes to join it (from its first
	// Write's arrival, and never once lingerWrites are queued): one XADD for the rows of many
	// handlers rather than one for every few, which was 0.4 Redis commands per event on a busy
	// host. A Write waits that much longer to be acknowledged. Default 2 ms; negative: none.
	Linger time.Duration
	// Logger receives retries and recoveries. Default slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns o with every zero field set to its default, and an error wrapping
// ErrInvalidOptions naming the first field out of range.
func (o Options) WithDefaults() (Options, error) {
	if o.Group == "" {
		o.Group = DefaultGroup
	}
	if o.BatchRows == 0 {
		o.BatchRows = DefaultBatchRows
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.MaxEntries == 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.ClaimAfter == 0 {
		o.ClaimAfter = DefaultClaimAfter
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.InsertTimeout == 0 {
		o.InsertTimeout = DefaultInsertTimeout
	}
	if o.BackoffMin == 0 {
		o.BackoffMin = DefaultBackoffMin
	}
	if o.BackoffMax == 0 {
		o.BackoffMax = max(DefaultBackoffMax, o.BackoffMin)
	}
	if o.Linger == 0 {
		o.Linger = DefaultLinger
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, o.validate()
}

func (o Options) validate() error {
	switch {
	case o.Key == "":
		return fmt.Errorf("%w: Key is empty; name the stream every host of the cluster shares", ErrInvalidOptions)
	case o.Consumer == "":
		return fmt.Errorf("%w: Consumer is empty; name this process (unique in the cluster)", ErrInvalidOptions)
	case o.BatchRows < 0:
		return fmt.Errorf("%w: BatchRows is %d; use a positive number, or 0 for %d", ErrInvalidOptions, o.BatchRows, DefaultBatchRows)
	case o.FlushInterval < 0:
		return fmt.Errorf("%w: FlushInterval is %v; use a positive duration, or 0 for %v", ErrInvalidOptions, o.FlushInterval, DefaultFlushInterval)
	case o.MaxEntries < 0:
		return fmt.Errorf("%w: MaxEntries is %d; use a positive number, or 0 for %d", ErrInvalidOptions, o.MaxEntries, DefaultMaxEntries)
	case o.ClaimAfter < 0:
		return fmt.Errorf("%w: ClaimAfter is %v; use a positive duration, or 0 for %v", ErrInvalidOptions, o.ClaimAfter, DefaultClaimAfter)
	case o.WriteTimeout < 0:
		return fmt.Errorf("%w: WriteTimeout is %v; use a positive duration, or 0 for %v", ErrInvalidOptions, o.WriteTimeout, DefaultWriteTimeout)
	case o.InsertTimeout < 0:
		return fmt.Errorf("%w: InsertTimeout is %v; use a positive duration, or 0 for %v", ErrInvalidOptions, o.InsertTimeout, DefaultInsertTimeout)
	case o.BackoffMin < 0:
		return fmt.Errorf("%w: BackoffMin is %v; use a positive duration, or 0 for %v", ErrInvalidOptions, o.BackoffMin, DefaultBackoffMin)
	case o.BackoffMax < o.BackoffMin:
		return fmt.Errorf("%w: BackoffMax %v is below BackoffMin %v", ErrInvalidOptions, o.BackoffMax, o.BackoffMin)
	}
	return nil
}
