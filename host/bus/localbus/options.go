package localbus

import (
	"fmt"
	"log/slog"
	"time"
)

// Options tune the embedded bus. The zero value is the production setting.
type Options struct {
	// NoSync skips fsync: Publish returns once the log is written to the operating system, which
	// survives a crash of the process but not of the machine. For tests and for measuring the
	// bus itself; the host never sets it.
	NoSync bool
	// TrimInterval is how often acknowledged messages are dropped from memory [1s]. Negative
	// disables trimming on its own (Trim still works).
	TrimInterval time.Duration
	// CompactBytes is the log size from which the log is rewritten as a snapshot of the live
	// state, once it is also at least three times that state [64 MiB].
	CompactBytes int64
	// MaxBacklogBytes caps the payload and headers of the messages kept (not yet acknowledged by
	// every group); Publish fails with ErrBacklogFull beyond it [256 MiB].
	MaxBacklogBytes int64
	// DefaultClaimAfter applies to subscriptions whose ClaimAfter is 0 [30s].
	DefaultClaimAfter time.Duration
	// Logger receives the few things worth telling an operator: a torn log tail cut off on
	// open, a compaction, a failed write [slog.Default()].
	Logger *slog.Logger
}

// WithDefaults fills the zero fields with their defaults.
func (o Options) WithDefaults() Options {
	if o.TrimInterval == 0 {
		o.TrimInterval = time.Second
	}
	if o.CompactBytes == 0 {
		o.CompactBytes = 64 << 20
	}
	if o.MaxBacklogBytes == 0 {
		o.MaxBacklogBytes = 256 << 20
	}
	if o.DefaultClaimAfter == 0 {
		o.DefaultClaimAfter = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

func (o Options) validate() error {
	if o.CompactBytes < 4096 {
		return fmt.Errorf("%w: CompactBytes %d is below 4096", ErrInvalidOptions, o.CompactBytes)
	}
	if o.MaxBacklogBytes < 1024 {
		return fmt.Errorf("%w: MaxBacklogBytes %d is below 1024", ErrInvalidOptions, o.MaxBacklogBytes)
	}
	if o.DefaultClaimAfter < 0 {
		return fmt.Errorf("%w: DefaultClaimAfter %s is negative", ErrInvalidOptions, o.DefaultClaimAfter)
	}
	return nil
}
