package host

import (
	"context"
	"errors"
	"io"

	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/host/models"
	"github.com/trellis-run/trellis/host/requests"
	"github.com/trellis-run/trellis/host/timers"
	"github.com/trellis-run/trellis/host/timers/recurring"
	"github.com/trellis-run/trellis/logstore"
)

// Backends are the storage a host runs on. The host names no concrete backend: cmd/trellis
// chooses them from the configuration (package host/backends), and a test may pass any value,
// a fault-injecting wrapper included.
type Backends struct {
	// Bus carries events. Nil when this process may not use it (a `trellis call` beside a
	// running serve on the embedded bus): BusUnavailable then says why, and sendEvent answers
	// with it.
	Bus            bus.Bus
	BusUnavailable error
	// Timers keeps task records and one-shot timers.
	Timers timers.Store
	// Coordinator makes each cron or interval tick run on one host of the cluster; nil only on a
	// host that does not serve (Config.ServeEvents false).
	Coordinator recurring.Coordinator
	// Requests tracks each request's unfinished nodes for the pipeline_finish signal; nil
	// tracks nothing and emits no pipeline_finish.
	Requests requests.Tracker
	// Logs is the execution log's store; the host writes to it through its own spooled writer.
	Logs logstore.Store
	// LogBuffer, when set, makes that writer: rows then wait in a buffer the cluster shares and
	// drains (logstore/redisspool on Redis) instead of in a spool in this host's data directory,
	// so no row a host acknowledged depends on that host's disk. Set with Redis and a shared log
	// store (ClickHouse); consumer names this process among the drainers.
	LogBuffer func(ctx context.Context, store logstore.Store, consumer string) (LogWriter, error)
	// Models keeps model rows.
	Models models.Store
	// Names say what each runs on, for /api/health: "bus", "logs" and "db" → "embedded",
	// "redis", "clickhouse", "postgres".
	Names map[string]string
	// Release frees what the backends share (one Redis client) once each of them is closed; nil
	// when they share nothing.
	Release func() error
}

// Close closes every backend — the values in the fields, so a wrapper a test put there is closed
// too — then releases what they share. The host calls it once, after every part that used
// them has stopped.
func (b *Backends) Close() error {
	var errs []error
	for _, c := range []any{b.Bus, b.Timers, b.Coordinator, b.Requests, b.Logs, b.Models} {
		if c, ok := c.(io.Closer); ok && c != nil {
			errs = append(errs, c.Close())
		}
	}
	if b.Release != nil {
		errs = append(errs, b.Release())
	}
	return errors.Join(errs...)
}

// OpenBackends opens the backends of cfg for the app named app (stream keys and lock names of
// apps sharing one Redis stay apart). Host.Start calls it, so a host that is stopped and started
// again opens them afresh.
type OpenBackends func(ctx context.Context, cfg Config, app string) (*Backends, error)
