// Package backends is the one place that chooses concrete backends: from a host.Config it opens
// the event bus, the task store, the tick coordinator, the execution log's store and the model
// store — Redis, ClickHouse and PostgreSQL where the configuration names them, embedded storage
// in the data directory otherwise — and hands them to the host as a host.Backends.
//
// It must not run anything: it opens and closes storage. cmd/trellis calls it; the host, the
// engine and the task center only ever see the interfaces.
package backends

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/bus/localbus"
	"github.com/trellis-run/trellis/host/bus/redisbus"
	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/models/pgmodels"
	"github.com/trellis-run/trellis/host/models/sqlitemodels"
	"github.com/trellis-run/trellis/host/redisconn"
	"github.com/trellis-run/trellis/host/requests/localtracker"
	"github.com/trellis-run/trellis/host/requests/redistracker"
	"github.com/trellis-run/trellis/host/timers/localtimers"
	"github.com/trellis-run/trellis/host/timers/recurring/locallock"
	"github.com/trellis-run/trellis/host/timers/recurring/redislock"
	"github.com/trellis-run/trellis/host/timers/redistimers"
	"github.com/trellis-run/trellis/logstore"
	"github.com/trellis-run/trellis/logstore/chstore"
	"github.com/trellis-run/trellis/logstore/localstore"
	"github.com/trellis-run/trellis/logstore/redisspool"
)

var _ host.OpenBackends = Open

// Open opens every backend cfg names for the app named app. What it opened before a failure is
// closed again; on success Backends.Close closes everything.
func Open(ctx context.Context, cfg host.Config, app string) (_ *host.Backends, err error) {
	cfg = cfg.WithDefaults()
	b := &host.Backends{Names: map[string]string{"bus": "embedded", "logs": "embedded", "db": "embedded"}}
	defer func() {
		if err != nil {
			_ = b.Close()
		}
	}()

	// Hosts of one cluster share the app's keys; apps on one Redis stay apart.
	prefix := "trellis:" + app + ":"
	if cfg.RedisURL != "" {
		// One server, a Redis Cluster or a master behind Sentinel (host/redisconn's URL forms).
		conn, err := redisconn.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("backends: --redis: %w", err)
		}
		// The bus builds its own clients from the same options: its blocking stream reads hold a
		// connection each and it counts its commands (trellis bench), so sharing its pool would
		// starve the task store. The task store, the tick coordinator and the request tracker
		// share one client. On a cluster each names its keys for it (the bus tags each topic,
		// the task store its prefix, the coordinator each template; the tracker's keys stand
		// alone); on one server the names are those of earlier releases.
		rb, err := redisbus.New(redisbus.Options{Conn: &conn, Prefix: prefix})
		if err != nil {
			return nil, fmt.Errorf("backends: open the event bus on Redis: %w", err)
		}
		b.Bus, b.Names["bus"] = rb, "redis"
		client := conn.NewClient()
		b.Release = client.Close
		b.Timers = redistimers.New(client, prefix+"timers:")
		b.Coordinator = redislock.New(client, prefix+"ticks:")
		b.Requests = redistracker.New(client, prefix+"requests:")
		if cfg.ClickHouseDSN != "" {
			// A shared log: its rows wait on the shared Redis until some host inserts them.
			b.LogBuffer = func(ctx context.Context, store logstore.Store, consumer string) (host.LogWriter, error) {
				// A host is dead after --claim-timeout for its deliveries: for its log batches too.
				s, err := redisspool.New(client, store, redisspool.Options{Key: prefix + "log:spool", Consumer: consumer, ClaimAfter: cfg.ClaimAfter})
				if err == nil {
					err = s.Start(ctx)
				}
				if err != nil {
					return nil, fmt.Errorf("backends: the execution log's buffer on Redis: %w", err)
				}
				return s, nil
			}
		}
	} else {
		lb, err := localbus.Open(filepath.Join(cfg.DataDir, "bus"), localbus.Options{})
		switch {
		case errors.Is(err, localbus.ErrLocked) && !cfg.ServeEvents:
			b.BusUnavailable = fmt.Errorf("%w: another trellis process (a running serve) owns the embedded event bus of %s; "+
				"send events through its HTTP API, or run every host on --redis", engine.ErrUnavailable, cfg.DataDir)
		case err != nil:
			return nil, fmt.Errorf("backends: open the embedded event bus: %w", err)
		default:
			b.Bus = lb
		}
		st, err := localtimers.Open(filepath.Join(cfg.DataDir, "timers.db"))
		if err != nil {
			return nil, fmt.Errorf("backends: open the embedded task store: %w", err)
		}
		b.Timers = st
		tr, err := localtracker.Open(filepath.Join(cfg.DataDir, "requests.db"))
		if err != nil {
			return nil, fmt.Errorf("backends: open the embedded request tracker: %w", err)
		}
		b.Requests = tr
		// Only a serving host runs ticks; a `trellis call` beside it must not take the lock file.
		if cfg.ServeEvents {
			lock, err := locallock.Open(filepath.Join(cfg.DataDir, "ticks.db"))
			if err != nil {
				return nil, fmt.Errorf("backends: open the embedded tick store: %w", err)
			}
			b.Coordinator = lock
		}
	}
	logs, err := OpenLogStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	b.Logs = logs
	if cfg.ClickHouseDSN != "" {
		b.Names["logs"] = "clickhouse"
	}

	if cfg.DBDSN != "" {
		ms, err := pgmodels.Open(ctx, cfg.DBDSN)
		if err != nil {
			return nil, fmt.Errorf("backends: open model storage on PostgreSQL (--db): %w", err)
		}
		b.Models, b.Names["db"] = ms, "postgres"
	} else {
		ms, err := sqlitemodels.Open(filepath.Join(cfg.DataDir, "models.db"))
		if err != nil {
			return nil, fmt.Errorf("backends: open model storage in the data directory: %w", err)
		}
		b.Models = ms
	}
	return b, nil
}

// OpenLogStore opens the execution log cfg names — ClickHouse with ClickHouseDSN, else the
// embedded store in DataDir/logs — for the host and for `trellis logs`.
func OpenLogStore(ctx context.Context, cfg host.Config) (logstore.Store, error) {
	cfg = cfg.WithDefaults()
	var (
		store logstore.Store
		err   error
	)
	if cfg.ClickHouseDSN != "" {
		store, err = chstore.Open(ctx, cfg.ClickHouseDSN, chstore.Options{Cluster: cfg.ClickHouseCluster, Distributed: cfg.ClickHouseCluster != ""})
	} else {
		store, err = localstore.Open(filepath.Join(cfg.DataDir, "logs"), localstore.Options{})
	}
	if err != nil {
		return nil, fmt.Errorf("backends: open the execution log: %w", err)
	}
	return store, nil
}
