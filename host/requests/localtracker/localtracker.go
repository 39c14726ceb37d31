// Package localtracker is the embedded requests.Tracker: a SQLite table of unfinished nodes in
// the data directory (requests.db), shared by every process on it (a serve and a `trellis call`
// beside it).
package localtracker

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/trellis-run/trellis/host/embedded/sqlitedb"
	"github.com/trellis-run/trellis/host/requests"
)

const schema = `
CREATE TABLE IF NOT EXISTS open_nodes (
  request_id TEXT    NOT NULL,
  node_id    TEXT    NOT NULL,
  opened_at  INTEGER NOT NULL, -- unix seconds, for expiry
  PRIMARY KEY (request_id, node_id)
) WITHOUT ROWID;
-- No index on opened_at: it would be one more page written by every open and close, and
-- only the prune reads it, by a scan every pruneInterval.
DROP INDEX IF EXISTS open_nodes_opened;
`

// pruneInterval is the time, in seconds, between two deletions of expired rows by one Tracker
// (a scan of the table, in the first batch after it; the first pruneInterval after Open): a
// long-running serve prunes, a short `trellis call` beside it does not.
const pruneInterval = 10 * 60

// Tracker is the embedded requests.Tracker. Calls made at once share one transaction (a
// group commit): one caller at a time flushes the queue, the others wait for its result, so a
// busy host pays one commit per batch rather than per node.
type Tracker struct {
	db *sql.DB
	// lastPrune is when (unix seconds) this Tracker last deleted expired rows, or was opened.
	lastPrune int64 // only run touches it, under the flush
	// The statements of the hot path, prepared once on the writer's one connection.
	insert, remove, left *sql.Stmt

	batch requests.Batcher[*op]
}

// op is one caller's OpenNodes (nodes) or CloseNode (close) and its outcome.
type op struct {
	requestID string
	nodes     []string
	close     string
	finished  bool
	err       error
	done      chan struct{}
}

// maxBatch bounds one transaction.
const maxBatch = 256

var _ requests.Tracker = (*Tracker)(nil)

// Open opens (creating) the tracker's file at path.
func Open(path string) (*Tracker, error) {
	db, err := sqlitedb.Open(path, sqlitedb.Options{})
	if err != nil {
		return nil, err
	}
	if _, err := db.Exec(schema); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("localtracker: create the schema of %s: %w", path, err)
	}
	t := &Tracker{db: db, lastPrune: time.Now().Unix()}
	t.batch = requests.Batcher[*op]{Run: t.run, Max: maxBatch}
	for _, p := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&t.insert, `INSERT INTO open_nodes (request_id, node_id, opened_at) VALUES (?, ?, ?)
			ON CONFLICT (request_id, node_id) DO UPDATE SET opened_at = excluded.opened_at`},
		{&t.remove, `DELETE FROM open_nodes WHERE request_id = ? AND node_id = ?`},
		{&t.left, `SELECT EXISTS (SELECT 1 FROM open_nodes WHERE request_id = ?)`},
	} {
		if *p.stmt, err = db.Prepare(p.sql); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("localtracker: prepare: %w", err)
		}
	}
	return t, nil
}

// Close closes the file.
func (t *Tracker) Close() error {
	for _, s := range []*sql.Stmt{t.insert, t.remove, t.left} {
		_ = s.Close()
	}
	return t.db.Close()
}

// OpenNodes marks nodeIDs of requestID unfinished. A request with no node opened for
// requests.Retention is deleted now and then (every pruneInterval): its nodes left unfinished
// that long are given up.
func (t *Tracker) OpenNodes(ctx context.Context, requestID string, nodeIDs ...string) error {
	if len(nodeIDs) == 0 {
		return nil
	}
	o := &op{requestID: requestID, nodes: nodeIDs, done: make(chan struct{})}
	t.batch.Do(o, o.done)
	return o.err
}

// CloseNode marks nodeID finished; it reports true when it was open and was the request's last.
func (t *Tracker) CloseNode(ctx context.Context, requestID, nodeID string) (bool, error) {
	o := &op{requestID: requestID, close: nodeID, done: make(chan struct{})}
	t.batch.Do(o, o.done)
	return o.finished, o.err
}

// run applies a batch in one transaction, in order. If the commit fails every op fails.
func (t *Tracker) run(batch []*op) {
	defer func() {
		for _, o := range batch {
			close(o.done)
		}
	}()
	fail := func(err error) {
		for _, o := range batch {
			o.finished, o.err = false, fmt.Errorf("localtracker: %w", err)
		}
	}
	ctx := context.Background()
	tx, err := t.db.BeginTx(ctx, nil)
	if err != nil {
		fail(err)
		return
	}
	defer func() { _ = tx.Rollback() }()
	now := time.Now().Unix()
	if now-t.lastPrune >= pruneInterval {
		// A request expires as a whole, Retention after its newest node (docs/signals.md), as a
		// Redis set does: a node older than that in a request still busy stays.
		if _, err := tx.ExecContext(ctx, `DELETE FROM open_nodes WHERE request_id IN (
			SELECT request_id FROM open_nodes GROUP BY request_id HAVING max(opened_at) < ?)`, now-requests.Retention); err != nil {
			fail(fmt.Errorf("prune: %w", err))
			return
		}
		t.lastPrune = now
	}
	// The hot statements bound to tx once per batch, not per op.
	st := &txStmts{ctx: ctx, tx: tx, t: t}
	for _, o := range batch {
		if o.close != "" {
			o.finished, o.err = st.closeNode(o.requestID, o.close)
		} else {
			o.err = st.openNodes(o.requestID, o.nodes, now)
		}
		if o.err != nil {
			// A failed statement may have left the transaction unusable: fail the whole batch.
			fail(o.err)
			return
		}
	}
	if err := tx.Commit(); err != nil {
		fail(err)
	}
}

// txStmts runs the hot statements in one batch's transaction, each bound to it on first use.
type txStmts struct {
	ctx                  context.Context
	tx                   *sql.Tx
	t                    *Tracker
	insert, remove, left *sql.Stmt
}

func (s *txStmts) bind(st **sql.Stmt, of *sql.Stmt) *sql.Stmt {
	if *st == nil {
		*st = s.tx.StmtContext(s.ctx, of)
	}
	return *st
}

func (s *txStmts) openNodes(requestID string, nodeIDs []string, now int64) error {
	insert := s.bind(&s.insert, s.t.insert)
	for _, n := range nodeIDs {
		if _, err := insert.ExecContext(s.ctx, requestID, n, now); err != nil {
			return fmt.Errorf("open %s: %w", n, err)
		}
	}
	return nil
}

// closeNode deletes the node's row and, when there was one, reports whether the request has
// none left: both in the batch's transaction, so among closes of its last nodes exactly one
// sees it empty.
func (s *txStmts) closeNode(requestID, nodeID string) (bool, error) {
	res, err := s.bind(&s.remove, s.t.remove).ExecContext(s.ctx, requestID, nodeID)
	if err != nil {
		return false, fmt.Errorf("close %s: %w", nodeID, err)
	}
	n, err := res.RowsAffected()
	if err != nil || n != 1 {
		return false, err
	}
	var left int
	if err := s.bind(&s.left, s.t.left).QueryRowContext(s.ctx, requestID).Scan(&left); err != nil {
		return false, fmt.Errorf("close %s: %w", nodeID, err)
	}
	return left == 0, nil
}
