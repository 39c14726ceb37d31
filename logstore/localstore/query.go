package localstore

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/trellis-run/trellis/logstore"
)

// readErr marks failures of the database as ErrUnavailable; a cancelled context stays what it is.
func readErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %w", ctx.Err(), err)
	}
	return fmt.Errorf("%w: %w", logstore.ErrUnavailable, err)
}

// where builds the WHERE clause of q over nodes n (and states s, for kwargs filters).
func where(q logstore.Query) (clause string, args []any, needsState bool) {
	var conds []string
	add := func(cond string, a ...any) {
		conds = append(conds, cond)
		args = append(args, a...)
	}
	if q.FullName != "" {
		add("n.full_name = ?", q.FullName)
	} else {
		add(notLag("n.full_name"))
	}
	if !q.Start.IsZero() {
		add("n.created_at >= ?", q.Start.UnixMilli())
	}
	if !q.End.IsZero() {
		add("n.created_at < ?", q.End.UnixMilli())
	}
	if q.Status != "" {
		add("n.status = ?", statusCodes[q.Status])
	}
	if q.Stage != "" {
		// nodes keeps no stage: it is the latest state's.
		add("s.stage = ?", q.Stage)
		needsState = true
	}
	if q.Sender != "" {
		add("n.sender = ?", q.Sender)
	}
	if q.Host != "" {
		add("n.host = ?", q.Host)
	}
	if q.ErrorCode != "" {
		add("n.error_code = ?", q.ErrorCode)
	}
	if q.Text != "" {
		// instr, not LIKE: the text's % and _ are plain characters. lower folds ASCII only.
		add(`(instr(lower(coalesce(s.kwargs, '')), lower(?)) > 0 OR instr(lower(n.error_code), lower(?)) > 0
			OR (json_valid(s.error) AND instr(lower(coalesce(s.error ->> '$.message', '')), lower(?)) > 0))`, q.Text, q.Text, q.Text)
		needsState = true
	}
	keys := make([]string, 0, len(q.Kwargs))
	for k := range q.Kwargs {
		keys = append(keys, k)
	}
	sort.Strings(keys) // stable SQL text
	for _, k := range keys {
		// A top-level field matches by its JSON text, strings unquoted: "1" matches 1 and "1".
		// Rows whose kwargs are not valid JSON match no kwargs filter rather than failing it.
		path := `$."` + k + `"` // keys are [A-Za-z0-9_-] (Query.Validate)
		add(`CASE WHEN json_valid(s.kwargs) THEN
			(CASE WHEN json_type(s.kwargs, ?) = 'text' THEN s.kwargs ->> ? ELSE s.kwargs -> ? END) = ?
			ELSE 0 END`, path, path, path, q.Kwargs[k])
		needsState = true
	}
	if len(conds) == 0 {
		return "", nil, needsState
	}
	return " WHERE " + strings.Join(conds, " AND "), args, needsState
}

// Query answers getEventLog: matching nodes by their latest state, newest CreatedAt first (ties
// in the order the nodes were first stored, newest first), and their total.
func (s *Store) Query(ctx context.Context, q logstore.Query) (logstore.Page, error) {
	q = q.WithDefaults()
	if err := q.Validate(); err != nil {
		return logstore.Page{}, fmt.Errorf("query: %w", err)
	}
	if s.closed.Load() {
		return logstore.Page{}, errClosed("query")
	}
	cond, args, needsState := where(q)
	join := ""
	if needsState {
		join = latestJoin
	}
	// Count and page from one snapshot, so the page agrees with the total.
	tx, err := s.read.BeginTx(ctx, nil)
	if err != nil {
		return logstore.Page{}, fmt.Errorf("query: %w", readErr(ctx, err))
	}
	defer func() { _ = tx.Rollback() }()
	var page logstore.Page
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM nodes n"+join+cond, args...).Scan(&page.TotalCount); err != nil {
		return logstore.Page{}, fmt.Errorf("query: count: %w", readErr(ctx, err))
	}
	page.RowDatas = []logstore.Row{}
	offset := int64(q.Page-1) * int64(q.PageSize)
	if offset >= page.TotalCount {
		return page, nil
	}
	rows, err := tx.QueryContext(ctx, "SELECT "+stateCols+" FROM nodes n"+latestJoin+cond+
		" ORDER BY n.created_at DESC, n.rowid DESC LIMIT ? OFFSET ?", append(args, q.PageSize, offset)...)
	if err != nil {
		return logstore.Page{}, fmt.Errorf("query: %w", readErr(ctx, err))
	}
	if page.RowDatas, err = scanRows(rows); err != nil {
		return logstore.Page{}, fmt.Errorf("query: %w", readErr(ctx, err))
	}
	return page, nil
}

// ByRequest is every node of a request, latest state each, by CreatedAt then NodeID.
func (s *Store) ByRequest(ctx context.Context, requestID string) ([]logstore.Row, error) {
	if s.closed.Load() {
		return nil, errClosed("by request")
	}
	rows, err := s.read.QueryContext(ctx, "SELECT "+stateCols+" FROM nodes n"+latestJoin+`
		WHERE n.request_id = ? ORDER BY n.created_at, n.node_id`, requestID)
	if err != nil {
		return nil, fmt.Errorf("by request %s: %w", requestID, readErr(ctx, err))
	}
	out, err := scanRows(rows)
	if err != nil {
		return nil, fmt.Errorf("by request %s: %w", requestID, readErr(ctx, err))
	}
	return out, nil
}

// byNodeSQL walks the call tree down from one node within its request (nodes_request serves
// each step: request_id, parent_node_id). CROSS JOIN fixes the join order: left to itself, SQLite
// scans every node in time order to save the final sort, which took half a second at a million
// rows.
const byNodeSQL = `WITH RECURSIVE tree(id) AS (
		SELECT node_id FROM nodes WHERE request_id = ?1 AND node_id = ?2
		UNION
		SELECT n.node_id FROM tree CROSS JOIN nodes n ON n.request_id = ?1 AND n.parent_node_id = tree.id
	)
	SELECT ` + stateCols + ` FROM tree CROSS JOIN nodes n ON n.node_id = tree.id CROSS` + latestJoin + `
	ORDER BY n.created_at, n.node_id`

// ByNode is the node and all its descendants in the request, latest state each, by CreatedAt
// then NodeID.
func (s *Store) ByNode(ctx context.Context, requestID, nodeID string) ([]logstore.Row, error) {
	if s.closed.Load() {
		return nil, errClosed("by node")
	}
	rows, err := s.read.QueryContext(ctx, byNodeSQL, requestID, nodeID)
	if err != nil {
		return nil, fmt.Errorf("by node %s: %w", nodeID, readErr(ctx, err))
	}
	out, err := scanRows(rows)
	if err != nil {
		return nil, fmt.Errorf("by node %s: %w", nodeID, readErr(ctx, err))
	}
	return out, nil
}

// Attempts is every recorded state of a node, oldest first (RecordedAt, then Seq).
func (s *Store) Attempts(ctx context.Context, nodeID string) ([]logstore.Row, error) {
	if s.closed.Load() {
		return nil, errClosed("attempts")
	}
	rows, err := s.read.QueryContext(ctx, "SELECT "+stateCols+` FROM states s
		WHERE s.created_at = (SELECT created_at FROM nodes WHERE node_id = ?1) AND s.node_id = ?1
		ORDER BY s.recorded_at, s.seq, s.rowid`, nodeID)
	if err != nil {
		return nil, fmt.Errorf("attempts %s: %w", nodeID, readErr(ctx, err))
	}
	out, err := scanRows(rows)
	if err != nil {
		return nil, fmt.Errorf("attempts %s: %w", nodeID, readErr(ctx, err))
	}
	return out, nil
}

// notLag leaves lag samples (logstore.KindLag) out of queries over every element; ';' follows
// ':' so the two bounds are exactly the names starting with logstore.LagPrefix.
func notLag(col string) string {
	return "(" + col + " < 'lag:' OR " + col + " >= 'lag;')"
}
