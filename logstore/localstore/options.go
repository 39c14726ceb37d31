package localstore

import "fmt"

// Options tune the embedded store; the zero value is a good default.
type Options struct {
	// ReadConns is how many connections answer queries at once (default 4). Writes always use
	// one more connection of their own, so queries never wait for a write to finish.
	ReadConns int
	// CacheMiB is SQLite's page cache per connection in MiB (default 32). Larger helps
	// analytics over many days at the cost of memory per connection.
	CacheMiB int
	// SyncFull makes every Insert wait until the rows are on the disk itself (synchronous=FULL).
	// The default (NORMAL, in WAL mode) already survives a crash of the process; FULL also
	// survives a power loss or OS crash, at a cost in insert latency.
	SyncFull bool
}

// WithDefaults fills the zero fields.
func (o Options) WithDefaults() Options {
	if o.ReadConns == 0 {
		o.ReadConns = 4
	}
	if o.CacheMiB == 0 {
		o.CacheMiB = 32
	}
	return o
}

func (o Options) validate() error {
	switch {
	case o.ReadConns < 1 || o.ReadConns > 64:
		return fmt.Errorf("%w: ReadConns must be 1 to 64, got %d", ErrInvalidOptions, o.ReadConns)
	case o.CacheMiB < 1 || o.CacheMiB > 4096:
		return fmt.Errorf("%w: CacheMiB must be 1 to 4096, got %d", ErrInvalidOptions, o.CacheMiB)
	}
	return nil
}
