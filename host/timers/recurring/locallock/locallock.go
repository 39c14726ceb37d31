package locallock

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/trellis-run/trellis/host/embedded/sqlitedb"
	"github.com/trellis-run/trellis/host/timers/recurring"
)

// claimRetention is how long a claim is kept: far longer than any timer is late.
const claimRetention = 24 * time.Hour

// pruneEvery is how many claims pass between deletions of old claims.
const pruneEvery = 1000

// Coordinator is the embedded recurring.Coordinator. It is safe for concurrent use; Close it
// when the host stops.
type Coordinator struct {
	db   *sql.DB
	path string

	mu     sync.Mutex
	runs   map[string]string // template → token of the held run lock
	claims int               // since the last prune
}

var _ recurring.Coordinator = (*Coordinator)(nil)

const schema = `
CREATE TABLE IF NOT EXISTS recurring_claims (
  template   TEXT    NOT NULL,
  at         INTEGER NOT NULL, -- unix nanoseconds of the tick
  claimed_at INTEGER NOT NULL, -- unix nanoseconds, real time, for pruning
  PRIMARY KEY (template, at)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS recurring_last (
  template TEXT PRIMARY KEY,
  at       INTEGER NOT NULL
) WITHOUT ROWID;`

// Open opens (creating it and its directory if needed) the SQLite file at path, typically
// <data dir>/recurring.db.
func Open(path string) (*Coordinator, error) {
	if path == "" {
		return nil, fmt.Errorf("locallock: open: %w: path is empty; pass a file in the data directory such as .trellis/recurring.db", recurring.ErrInvalidArgument)
	}
	// One connection: writes are serialized in Go instead of failing with SQLITE_BUSY.
	db, err := sqlitedb.Open(path, sqlitedb.Options{})
	if errors.Is(err, sqlitedb.ErrInvalidOptions) {
		return nil, fmt.Errorf("locallock: open %s: %w: %w", path, recurring.ErrInvalidArgument, err)
	}
	if err != nil {
		return nil, fmt.Errorf("locallock: open %s: %w", path, err)
	}
	if _, err := db.Exec(schema); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("locallock: open %s: create tables (is it a Trellis data file, and writable?): %w", path, err)
	}
	return &Coordinator{db: db, path: path, runs: map[string]string{}}, nil
}

// Close closes the file. Held run locks are forgotten, as a process exit would.
func (c *Coordinator) Close() error {
	if err := c.db.Close(); err != nil {
		return fmt.Errorf("locallock: close %s: %w", c.path, err)
	}
	return nil
}

func checkTemplate(op, template string) error {
	if template == "" {
		return fmt.Errorf("locallock: %s: %w: template name is empty; pass the template's fullName", op, recurring.ErrInvalidArgument)
	}
	return nil
}

// ClaimTick implements recurring.Coordinator.
func (c *Coordinator) ClaimTick(ctx context.Context, template string, at time.Time) (bool, error) {
	if err := checkTemplate("claim tick", template); err != nil {
		return false, err
	}
	if at.Before(time.Unix(0, 0)) {
		return false, fmt.Errorf("locallock: claim tick: %w: tick time %s is zero or before 1970; pass the tick's scheduled time", recurring.ErrInvalidArgument, at)
	}
	won, err := c.claim(ctx, template, at.UnixNano())
	if err != nil {
		return false, fmt.Errorf("locallock: claim tick %s of %q: %w", at, template, err)
	}
	c.mu.Lock()
	c.claims++
	prune := c.claims >= pruneEvery
	if prune {
		c.claims = 0
	}
	c.mu.Unlock()
	if prune {
		// Best effort: old claims only cost space.
		_, _ = c.db.ExecContext(ctx, `DELETE FROM recurring_claims WHERE claimed_at < ?`, time.Now().Add(-claimRetention).UnixNano())
	}
	return won, nil
}

func (c *Coordinator) claim(ctx context.Context, template string, at int64) (bool, error) {
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO recurring_claims (template, at, claimed_at) VALUES (?, ?, ?)`,
		template, at, time.Now().UnixNano())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil || n == 0 {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO recurring_last (template, at) VALUES (?, ?)
		ON CONFLICT (template) DO UPDATE SET at = excluded.at WHERE excluded.at > recurring_last.at`, template, at); err != nil {
		return false, err
	}
	return true, tx.Commit()
}

// LastTick implements recurring.Coordinator.
func (c *Coordinator) LastTick(ctx context.Context, template string) (time.Time, bool, error) {
	if err := checkTemplate("last tick", template); err != nil {
		return time.Time{}, false, err
	}
	var at int64
	err := c.db.QueryRowContext(ctx, `SELECT at FROM recurring_last WHERE template = ?`, template).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("locallock: last tick of %q: %w", template, err)
	}
	return time.Unix(0, at).UTC(), true, nil
}

// AcquireRun implements recurring.Coordinator. The lock lives in this process and is held until
// released, so ttl (checked for the common contract) needs no renewal here.
func (c *Coordinator) AcquireRun(ctx context.Context, template string, ttl time.Duration) (func(), bool, error) {
	if err := checkTemplate("acquire run lock", template); err != nil {
		return nil, false, err
	}
	if ttl < time.Millisecond {
		return nil, false, fmt.Errorf("locallock: acquire run lock: %w: ttl %s; use at least 1ms (the scheduler uses 30s)", recurring.ErrInvalidArgument, ttl)
	}
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("locallock: acquire run lock of %q: %w", template, err)
	}
	var raw [8]byte
	_, _ = rand.Read(raw[:])
	token := hex.EncodeToString(raw[:])
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, held := c.runs[template]; held {
		return nil, false, nil
	}
	c.runs[template] = token
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.runs[template] == token {
				delete(c.runs, template)
			}
		})
	}, true, nil
}
