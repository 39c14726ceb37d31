// Package localtracker is the embedded requests.Tracker: a SQLite table of unfinished nodes in
// the data directory (requests.db), shared by every process on it (a serve and a `trellis call`
// beside it).
package localtracker

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
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
CREATE INDEX IF NOT EXISTS open_nodes_opened ON open_nodes (opened_at);
`

// pruneEvery is how many OpenNodes calls pass between two deletions of expired rows.
const pruneEvery = 4096

// Tracker is the embedded requests.Tracker. Calls made at once share one transaction (a
// group commit): one caller at a time flushes the queue, the others wait for its result, so a
// busy host pays one commit per batch rather than per node.
type Tracker struct {
	db    *sql.DB
	opens atomic.Int64
	// The statements of the hot path, prepared once on the writer's one connection.
	insert, remove, left *sql.Stmt

	mu       sync.Mutex
	queue    []*op
	flushing bool
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
	t := &Tracker{db: db}
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

// OpenNodes marks nodeIDs of requestID unfinished. A row older than requests.Retention is
// deleted now and then: a node left unfinished that long is given up.
func (t *Tracker) OpenNodes(ctx context.Context, requestID string, nodeIDs ...string) error {
	if len(nodeIDs) == 0 {
		return nil
	}
	o := &op{requestID: requestID, nodes: nodeIDs}
	t.do(ctx, o)
	return o.err
}

// CloseNode marks nodeID finished; it reports true when it was open and was the request's last.
func (t *Tracker) CloseNode(ctx context.Context, requestID, nodeID string) (bool, error) {
	o := &op{requestID: requestID, close: nodeID}
	t.do(ctx, o)
	return o.finished, o.err
}

// do queues o and waits for its outcome; the first caller to find no flush under way flushes
// batches until the queue is empty. A caller's ctx does not cut a batch short: the others in
// it wait for the same commit.
func (t *Tracker) do(_ context.Context, o *op) {
	o.done = make(chan struct{})
	t.mu.Lock()
	t.queue = append(t.queue, o)
	if t.flushing {
		t.mu.Unlock()
		<-o.done
		return
	}
	t.flushing = true
	for len(t.queue) > 0 {
		n := min(len(t.queue), maxBatch)
		batch := t.queue[:n:n]
		t.queue = t.queue[n:]
		t.mu.Unlock()
		t.run(batch)
		t.mu.Lock()
	}
	t.flushing = false
	t.mu.Unlock()
	<-o.done
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
	for _, o := range batch {
		if o.close != "" {
			o.finished, o.err = t.closeIn(ctx, tx, o.requestID, o.close)
		} else {
			o.err = t.openIn(ctx, tx, o.requestID, o.nodes, now)
			if o.err == nil && t.opens.Add(1)%pruneEvery == 0 {
				if _, err := tx.ExecContext(ctx, `DELETE FROM open_nodes WHERE opened_at < ?`, now-requests.Retention); err != nil {
					o.err = fmt.Errorf("localtracker: prune: %w", err)
				}
			}
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

func (t *Tracker) openIn(ctx context.Context, tx *sql.Tx, requestID string, nodeIDs []string, now int64) error {
	insert := tx.StmtContext(ctx, t.insert)
	for _, n := range nodeIDs {
		if _, err := insert.ExecContext(ctx, requestID, n, now); err != nil {
			return fmt.Errorf("open %s: %w", n, err)
		}
	}
	return nil
}

func (t *Tracker) closeIn(ctx context.Context, tx *sql.Tx, requestID, nodeID string) (bool, error) {
	res, err := tx.StmtContext(ctx, t.remove).ExecContext(ctx, requestID, nodeID)
	if err != nil {
		return false, fmt.Errorf("close %s: %w", nodeID, err)
	}
	n, err := res.RowsAffected()
	if err != nil || n != 1 {
		return false, err
	}
	var left int
	if err := tx.StmtContext(ctx, t.left).QueryRowContext(ctx, requestID).Scan(&left); err != nil {
		return false, fmt.Errorf("close %s: %w", nodeID, err)
	}
	return left == 0, nil
}
