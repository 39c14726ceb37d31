// Package chstore is the execution log on ClickHouse: the logstore.Store backend for large
// deployments, over the native protocol of github.com/ClickHouse/clickhouse-go/v2.
//
// It owns the log's ClickHouse schema (created at Open, checked when it already exists), the
// batch insert, the queries and analytics as SQL that runs on ClickHouse 18.16 (Debian's
// package, which the tests use) as well as current releases, and retention by dropping daily
// partitions. It does not batch, spool or retry: logstore/writer does that in front of it and
// expects Insert to take large batches (10k–100k rows) about once a second.
package chstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/trellis-run/trellis/logstore"
)

var _ logstore.Store = (*Store)(nil)

// Store is the execution log in one ClickHouse database. Safe for concurrent use.
type Store struct {
	conn   driver.Conn
	schema schema
	addr   string

	// rollupMu serializes planning and building rollups, so concurrent charts do not build
	// the same hours twice.
	rollupMu sync.Mutex
	// newest counts the queries answered from the newest windows (queryNewest), for tests.
	newest atomic.Int64

	closeOnce sync.Once
	closed    atomic.Bool
	closeErr  error
}

// Open connects to the server named by dsn (clickhouse://user:pass@host:9000/db, the native
// protocol; several hosts may be given comma-separated; timeouts and pool size come from
// Options, which override the DSN's), creates the database,
// tables and view if missing and checks existing ones. A server that cannot be reached, or a
// table of the same name that is not the execution log, is an error wrapping
// logstore.ErrUnavailable that says what to do.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	chOpts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		// The parser's message quotes the DSN, password and all: keep it out of logs.
		return nil, fmt.Errorf("chstore: open: %w: the DSN is not a ClickHouse URL; want clickhouse://[user:password@]host:9000/database", ErrOptions)
	}
	if chOpts.Protocol != clickhouse.Native {
		return nil, fmt.Errorf("chstore: open: %w: DSN uses the HTTP protocol; use clickhouse://host:9000 (the native protocol; ClickHouse 18.16 refuses the HTTP client)", ErrOptions)
	}
	opts = opts.WithDefaults(chOpts.Auth.Database)
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("chstore: open: %w", err)
	}
	chOpts.DialTimeout = opts.DialTimeout
	chOpts.ReadTimeout = opts.ReadTimeout
	chOpts.MaxOpenConns = opts.MaxOpenConns
	chOpts.MaxIdleConns = min(opts.MaxOpenConns, 4)
	if opts.Distributed {
		// Inserts through a Distributed table are asynchronous by default; the contract says a
		// row is visible once Insert returned.
		if chOpts.Settings == nil {
			chOpts.Settings = clickhouse.Settings{}
		}
		chOpts.Settings["insert_distributed_sync"] = 1
	}
	s := &Store{schema: schema{opts: opts}, addr: strings.Join(chOpts.Addr, ",")}
	conn, err := clickhouse.Open(chOpts)
	if err != nil {
		return nil, s.unavailable("open", err)
	}
	s.conn = conn
	if err := s.init(ctx); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return s, nil
}

// init pings, detects the server's features and creates or checks the schema.
func (s *Store) init(ctx context.Context) error {
	pingCtx, cancel := context.WithTimeout(ctx, s.schema.opts.DialTimeout+s.schema.opts.DialTimeout/2)
	defer cancel()
	if err := s.conn.Ping(pingCtx); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("chstore: open: %w", ctx.Err())
		}
		return s.unavailable("open", err)
	}
	var version string
	if err := s.conn.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		return s.fail(ctx, "open: read server version", err)
	}
	s.schema.feat.parseVersion(version)
	var fn, set uint64
	if err := s.conn.QueryRow(ctx, "SELECT (SELECT count() FROM system.functions WHERE name = 'JSONExtractRaw'), (SELECT count() FROM system.settings WHERE name = 'max_partitions_per_insert_block')").Scan(&fn, &set); err != nil {
		return s.fail(ctx, "open: read server features", err)
	}
	s.schema.feat.jsonExtract, s.schema.feat.partitionLimit = fn > 0, set > 0
	if err := s.exec(ctx, s.schema.tablesDDL()); err != nil {
		return err
	}
	if err := s.checkSchema(ctx); err != nil {
		return err
	}
	return s.exec(ctx, s.schema.viewsDDL())
}

// exec runs schema statements.
func (s *Store) exec(ctx context.Context, stmts []string) error {
	for _, stmt := range stmts {
		if err := s.conn.Exec(ctx, stmt); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("chstore: open: %w", ctx.Err())
			}
			return fmt.Errorf("chstore: open: %w: %w: ClickHouse at %s refused the schema (%w); check the user may create tables in database %s, or set another table name",
				logstore.ErrUnavailable, ErrSchema, s.addr, err, s.schema.opts.Database)
		}
	}
	return nil
}

// checkSchema compares the existing tables' columns with the store's, so a foreign table of the
// same name is reported at Open rather than as puzzling insert errors later.
func (s *Store) checkSchema(ctx context.Context) error {
	for _, t := range []struct {
		name string
		cols []column
	}{{s.schema.localLogName(), logColumns}, {s.schema.localKeysName(), keyColumns}} {
		rows, err := s.conn.Query(ctx, fmt.Sprintf("SELECT name, type FROM system.columns WHERE database = %s AND table = %s",
			quoteString(s.schema.opts.Database), quoteString(t.name)))
		if err != nil {
			return s.fail(ctx, "open: read table columns", err)
		}
		got := map[string]string{}
		for rows.Next() {
			var name, typ string
			if err := rows.Scan(&name, &typ); err != nil {
				_ = rows.Close()
				return s.fail(ctx, "open: read table columns", err)
			}
			got[name] = typ
		}
		if err := rows.Err(); err != nil {
			_ = rows.Close()
			return s.fail(ctx, "open: read table columns", err)
		}
		_ = rows.Close()
		var problems []string
		for _, c := range t.cols {
			typ, ok := got[c.name]
			switch {
			case !ok:
				problems = append(problems, "no column "+c.name)
			case !c.accepts(typ):
				problems = append(problems, fmt.Sprintf("column %s is %s, not %s", c.name, typ, c.declared(false)))
			}
		}
		if len(problems) > 0 {
			return fmt.Errorf("chstore: open: %w: %w: table %s.%s on %s is not a Trellis execution log (%s); drop or rename it, or choose another table name",
				logstore.ErrUnavailable, ErrSchema, s.schema.opts.Database, t.name, s.addr, strings.Join(problems, "; "))
		}
	}
	return nil
}

// ServerVersion is the version() of the server Open connected to.
func (s *Store) ServerVersion() string { return s.schema.feat.version }

// DDL is the statements Open ran (or would run again), for operators who create the schema
// themselves or review a cluster layout.
func (s *Store) DDL() []string { return s.schema.DDL() }

// Close closes the connections. Safe to call twice; calls after Close fail with ErrClosed,
// which also wraps logstore.ErrUnavailable (the log is not there to use).
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.closeErr = s.conn.Close()
	})
	return s.closeErr
}

func (s *Store) checkOpen(op string) error {
	if s.closed.Load() {
		return fmt.Errorf("chstore: %s: %w: %w", op, ErrClosed, logstore.ErrUnavailable)
	}
	return nil
}

// unavailable wraps a failure to reach the server.
func (s *Store) unavailable(op string, err error) error {
	return fmt.Errorf("chstore: %s: %w: ClickHouse at %s did not answer (%w); start it or correct the DSN", op, logstore.ErrUnavailable, s.addr, err)
}

// fail wraps an error of a statement. A cancelled or expired ctx is the caller's doing and is
// returned as such; anything else from the driver or the server means the log cannot be used
// right now, which callers (the writer) treat as retryable.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("chstore: %s: %w", op, ctx.Err())
	}
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return fmt.Errorf("chstore: %s: %w: ClickHouse at %s: %w", op, logstore.ErrUnavailable, s.addr, err)
	}
	return s.unavailable(op, err)
}
