package chstore

import (
	"context"
	dbsql "database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/trellis-run/trellis/logstore"
)

// pointRead are the settings of queries that read whole rows at known keys.
var pointRead = clickhouse.WithSettings(clickhouse.Settings{"use_uncompressed_cache": 1})

// Expressions shared by the queries.
const (
	// createdMSExpr is CreatedAt in epoch milliseconds.
	createdMSExpr = "toInt64(created_at) * 1000 + created_ms"
	// versionExpr orders the states of a node: argMax(x, versionExpr) is x of the latest state.
	versionExpr = "version"
	// nodeKey groups rows by node: a UInt64 hash groups about twice as fast as the 32-byte
	// string, and a collision of two node ids in one query's range (odds about n²/2⁶⁵) is
	// far below any other source of error.
	nodeKey = "cityHash64(node_id)"
	// rowSelect reads a whole Row, in the order scanRow expects.
	rowSelect = "id, kind, full_name, sender, event_type, status, stage, request_id, node_id, parent_node_id, attempt, " +
		createdMSExpr + ", version, seq, start_ms, end_ms, duration_ms, kwargs, result, " +
		"has_error, error_code, error_message, error_stack, host, logs, event_id"
	// maxSpans is how many (element, time range) spans a point read spells out one by one
	// before it falls back to one range over all of them.
	maxSpans = 64
)

// Query is getEventLog: nodes whose latest state matches q, newest CreatedAt first (NodeID,
// descending, breaks ties), with the total count.
//
// The page comes from the log in two steps. The first aggregates only light columns per node
// over the primary-key range (full_name, created_at): the latest status and filtered fields by
// argMax, then the page's nodes by ORDER BY … LIMIT, and the number of matching nodes in the
// same pass: an outer GROUP BY over the matching nodes WITH TOTALS, whose totals row counts
// them (18.16 has no window functions). The second reads whole rows of just the page's nodes,
// at their exact (full_name, created_at) keys, reading the heavy columns only for granules
// PREWHERE found them in.
//
// Over a long range that first step groups every node of the range (all 4M nodes of a 10-day,
// 10M-row log: seconds). When the filters are ones the analytics rollup counts (an element or
// every element, a status, a range; see queryNewest) and the range is open or spans every
// element, the total comes from the rollup instead and the page from the newest part of the
// range alone.
func (s *Store) Query(ctx context.Context, q logstore.Query) (logstore.Page, error) {
	if err := s.checkOpen("query"); err != nil {
		return logstore.Page{}, err
	}
	q = q.WithDefaults()
	if err := q.Validate(); err != nil {
		return logstore.Page{}, fmt.Errorf("chstore: query: %w", err)
	}
	// One element over a closed range is a narrow primary-key range, read in one statement
	// faster than the rollup's planning and a window or two would take.
	if s.rollupCounts(q) && (q.FullName == "" || q.Start.IsZero() || q.End.IsZero()) {
		page, ok, err := s.queryNewest(ctx, q)
		if err != nil || ok {
			return page, err
		}
	}
	offset := int64(q.Page-1) * int64(q.PageSize)
	hits, total, err := s.pageHits(ctx, s.pageSQL(q, q.Start, q.End, offset))
	if err != nil {
		return logstore.Page{}, err
	}
	return s.readPage(ctx, hits, total)
}

// rollupCounts says whether the analytics rollup can count q's matching nodes: it holds, per
// element (and every element) and hour, the nodes by latest status, so it can count filters on
// fullName, status and the range, and nothing else.
func (s *Store) rollupCounts(q logstore.Query) bool {
	return !s.schema.opts.NoRollup && q.Stage == "" && q.Sender == "" && q.Host == "" && q.ErrorCode == "" &&
		len(q.Kwargs) == 0 && q.Text == "" && q.FullName != allElements && !strings.HasPrefix(q.FullName, logstore.LagPrefix)
}

// queryNewest answers q (whose filters rollupCounts accepts) without grouping every node of its
// range: the exact total from the rollup (countLatest), and the page from the newest part of
// the range only, widened until it holds the page.
//
// The page is nodes ordered by CreatedAt, newest first, and every state of a node carries its
// CreatedAt, so a node is wholly inside or wholly outside a window [T, end) of CreatedAt. If the
// window holds at least offset+pageSize matching nodes (or all the range has), every node
// outside it is older than each of them: the window's page is the range's page, exactly. The
// windows are the last hour before the range's end (the newest row of the log when the range
// is open), then 8, 64, 512… hours, and at last the whole range; each costs in proportion to
// the rows it holds, so a first page over days of a busy log reads one hour.
//
// ok is false when the rollup cannot serve the range (shorter than two hours, or longer than
// maxRollupSpan): then Query reads the whole range as before.
func (s *Store) queryNewest(ctx context.Context, q logstore.Query) (page logstore.Page, ok bool, err error) {
	start, end := q.Start, q.End
	if start.IsZero() || end.IsZero() {
		lo, hi, some, err := s.createdBounds(ctx)
		if err != nil {
			return page, false, s.fail(ctx, "query: bounds", err)
		}
		if !some {
			s.newest.Add(1)
			return logstore.Page{RowDatas: []logstore.Row{}}, true, nil
		}
		// [lo, hi] are whole seconds holding every row's created_at.
		if first := time.Unix(lo, 0); start.IsZero() || start.Before(first) {
			start = first
		}
		if last := time.Unix(hi+1, 0); end.IsZero() || end.After(last) {
			end = last
		}
	}
	if !start.Before(end) {
		s.newest.Add(1)
		return logstore.Page{RowDatas: []logstore.Row{}}, true, nil
	}
	if !s.useRollup(q.FullName, start, end) {
		return page, false, nil
	}
	total, err := s.countLatest(ctx, q.FullName, q.Status, start, end)
	if err != nil {
		return page, false, s.fail(ctx, "query: count", err)
	}
	offset := int64(q.Page-1) * int64(q.PageSize)
	if offset >= total {
		s.newest.Add(1)
		return logstore.Page{TotalCount: total, RowDatas: []logstore.Row{}}, true, nil
	}
	need := min(offset+int64(q.PageSize), total)
	for w := time.Hour; ; w *= 8 {
		from := end.Add(-w)
		whole := !from.After(start)
		if whole {
			from = start
		}
		hits, found, err := s.pageHits(ctx, s.pageSQL(q, from, end, offset))
		if err != nil {
			return page, false, err
		}
		if whole {
			// The whole range was grouped: its own count is as exact, and of the same moment.
			total = found
		}
		if whole || found >= need {
			s.newest.Add(1)
			page, err := s.readPage(ctx, hits, total)
			return page, err == nil, err
		}
	}
}

// createdBounds are the first and last whole seconds of created_at in the log (some says whether
// it holds a row at all). On one server they come from the parts' min/max index (system.parts,
// a few milliseconds); in Distributed mode system.parts knows only this server, so they are read
// from the log's created_at column (about 60 ms per 10M rows).
func (s *Store) createdBounds(ctx context.Context) (lo, hi int64, some bool, err error) {
	var first, last uint32
	var n uint64
	if !s.schema.opts.Distributed {
		err = s.conn.QueryRow(ctx, fmt.Sprintf("SELECT toUInt32(min(min_time)), toUInt32(max(max_time)), count() FROM system.parts WHERE database = %s AND table = %s AND active AND rows > 0",
			quoteString(s.schema.opts.Database), quoteString(s.schema.localLogName()))).Scan(&first, &last, &n)
		if err != nil || n == 0 {
			return 0, 0, false, err
		}
		if last != 0 {
			return int64(first), int64(last), true, nil
		}
		// A server that left the parts' times empty: read the column.
	}
	err = s.conn.QueryRow(ctx, "SELECT toUInt32(min(created_at)), toUInt32(max(created_at)), count() FROM "+s.schema.logTable()).Scan(&first, &last, &n)
	return int64(first), int64(last), err == nil && n > 0, err
}

// countLatest is the exact number of nodes of fullName ("" = every element but lag samples)
// created in [start, end) whose latest status is status ("" = any): whole days and hours from
// the analytics rollup (each hour's figures are checked against the hour's insert count, so a
// late state or a replayed batch makes the hour be rebuilt or read from the log; see rollup.go),
// the partial hours at the ends and the hours still being written from the log.
func (s *Store) countLatest(ctx context.Context, fullName, status string, start, end time.Time) (int64, error) {
	col, raw := "total", "count()"
	if status != "" {
		// A column of the rollup, and the Enum8 code in latestNodes; status is validated.
		col, raw = status, fmt.Sprintf("countIf(st = %d)", statusCode[status])
	}
	ranges := [][2]time.Time{{start, end}}
	var parts []string
	if from, to := hourCeil(start), hourFloor(end); to > from {
		plan, err := s.planRollup(ctx, from, to, s.hourLevel(), true)
		if err != nil {
			return 0, err
		}
		if !plan.empty() {
			if len(plan.days) > 0 {
				parts = append(parts, s.rollupSource(s.dayLevel(), col+" AS t", plan.days, fullName, true))
			}
			if len(plan.hours) > 0 {
				parts = append(parts, s.rollupSource(s.hourLevel(), col+" AS t", plan.hours, fullName, true))
			}
			ranges = rawRanges(plan, [2]time.Time{start, time.Unix(from, 0)}, [2]time.Time{time.Unix(to, 0), end})
		}
	}
	if len(ranges) > 0 {
		parts = append(parts, fmt.Sprintf("SELECT %s AS t FROM (%s)", raw, s.latestNodesWhere(rangesCond(fullName, ranges))))
	}
	var total uint64
	if err := s.conn.QueryRow(ctx, "SELECT toUInt64(sum(t)) FROM ("+strings.Join(parts, " UNION ALL ")+")").Scan(&total); err != nil {
		return 0, err
	}
	return int64(total), nil
}

// pageSQL is the first step of Query over nodes created in [start, end) (either may be zero:
// open): the page's nodes from offset (node, element, created ms, 1), and WITH TOTALS the
// number of matching nodes.
func (s *Store) pageSQL(q logstore.Query, start, end time.Time, offset int64) string {
	// Each filter applies to the latest state (HAVING argMax…); the same test on single rows
	// (rowConds) holds for the latest row of every matching node, so it can also narrow the
	// nodes before aggregating.
	var having, rowConds []string
	filter := func(col string, cond func(expr string) string) {
		having = append(having, cond("argMax("+col+", "+versionExpr+")"))
		rowConds = append(rowConds, cond(col))
	}
	equals := func(value string) func(string) string {
		return func(expr string) string { return expr + " = " + quoteString(value) }
	}
	if q.Status != "" {
		filter("status", equals(q.Status))
	}
	if q.Stage != "" {
		filter("stage", equals(q.Stage))
	}
	if q.Sender != "" {
		filter("sender", equals(q.Sender))
	}
	if q.Host != "" {
		filter("host", equals(q.Host))
	}
	if q.ErrorCode != "" {
		filter("error_code", equals(q.ErrorCode))
	}
	for _, k := range slices.Sorted(maps.Keys(q.Kwargs)) {
		filter("kwargs", func(expr string) string { return s.kwargsCond(expr, k, q.Kwargs[k]) })
	}
	if q.Text != "" {
		// Found in any of three columns of the latest state: one condition over their argMax.
		t := quoteString(q.Text)
		text := func(kwargs, code, message string) string {
			return fmt.Sprintf("(positionCaseInsensitiveUTF8(%[1]s, %[4]s) > 0 OR positionCaseInsensitiveUTF8(%[2]s, %[4]s) > 0 OR positionCaseInsensitiveUTF8(%[3]s, %[4]s) > 0)",
				kwargs, code, message, t)
		}
		latest := func(col string) string { return "argMax(" + col + ", " + versionExpr + ")" }
		having = append(having, text(latest("kwargs"), latest("error_code"), latest("error_message")))
		rowConds = append(rowConds, text("kwargs", "error_code", "error_message"))
	}
	where := rangeConds(q.FullName, start, end)
	// Over every element the range holds many nodes; when the filters are selective (failures,
	// a stage but done, an error code, free filters — not a status most nodes reach, such as
	// success, nor waiting, which every node starts in), aggregating only nodes having a
	// matching row is about twice as fast. Within one element the range is small and a second scan would only add cost.
	// The subquery names the shard-local table: in Distributed mode all states of a node live
	// on one shard, so each shard narrows its own nodes (and a Distributed table inside IN on a
	// Distributed table is refused by default).
	if q.FullName == "" && (q.Status == logstore.StatusFail || (q.Stage != "" && q.Stage != logstore.StageDone) || q.ErrorCode != "" || q.Sender != "" || q.Host != "" || len(q.Kwargs) > 0 || q.Text != "") {
		where = append(where, fmt.Sprintf("%[1]s IN (SELECT %[1]s FROM %[2]s WHERE %[3]s)",
			nodeKey, s.schema.qualified(s.schema.localLogName()), strings.Join(append(slices.Clone(where), rowConds...), " AND ")))
	}
	inner := fmt.Sprintf("SELECT %s AS nk, any(node_id) AS node, any(full_name) AS fn, any(%s) AS created FROM %s WHERE %s GROUP BY nk",
		nodeKey, createdMSExpr, s.schema.logTable(), strings.Join(where, " AND "))
	if len(having) > 0 {
		inner += " HAVING " + strings.Join(having, " AND ")
	}
	return fmt.Sprintf("SELECT any(node) AS n, any(fn), any(created) AS c, count() FROM (%s) GROUP BY nk WITH TOTALS ORDER BY c DESC, n DESC LIMIT %d, %d",
		inner, offset, q.PageSize)
}

// hit is one node of a page, from pageSQL.
type hit struct {
	node, fullName string
	created        int64
}

// pageHits runs a pageSQL query: the page's nodes and the number of matching nodes.
func (s *Store) pageHits(ctx context.Context, sql string) ([]hit, int64, error) {
	rows, err := s.conn.Query(ctx, sql)
	if err != nil {
		return nil, 0, s.fail(ctx, "query", err)
	}
	defer rows.Close()
	var hits []hit
	for rows.Next() {
		var (
			h   hit
			one uint64
		)
		if err := rows.Scan(&h.node, &h.fullName, &h.created, &one); err != nil {
			return nil, 0, s.fail(ctx, "query", err)
		}
		hits = append(hits, h)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, s.fail(ctx, "query", err)
	}
	var (
		h     hit
		total uint64
	)
	switch err := rows.Totals(&h.node, &h.fullName, &h.created, &total); {
	case errors.Is(err, dbsql.ErrNoRows):
		total = 0 // no totals block: nothing matched at all
	case err != nil:
		return nil, 0, s.fail(ctx, "query: total count", err)
	}
	return hits, int64(total), nil
}

// readPage is the second step of Query: the latest state of each of the page's nodes, read
// whole at their (full_name, created_at) keys, in the page's order.
func (s *Store) readPage(ctx context.Context, hits []hit, total int64) (logstore.Page, error) {
	page := logstore.Page{TotalCount: total, RowDatas: []logstore.Row{}}
	if len(hits) == 0 {
		return page, nil
	}
	nodes := make([]string, len(hits))
	spans := make([]span, 0, len(hits))
	seen := map[span]bool{}
	for i, h := range hits {
		nodes[i] = quoteString(h.node)
		sec := uint32(floorDiv(h.created, 1000))
		if sp := (span{fullName: h.fullName, lo: sec, hi: sec}); !seen[sp] {
			seen[sp] = true
			spans = append(spans, sp)
		}
	}
	all, err := s.selectRows(ctx, "query", fmt.Sprintf("SELECT %s FROM %s PREWHERE node_id IN (%s) WHERE %s",
		rowSelect, s.schema.logTable(), strings.Join(nodes, ", "), spanCond(spans)))
	if err != nil {
		return logstore.Page{}, err
	}
	byNode := latestByNode(all)
	for _, h := range hits {
		if r, ok := byNode[h.node]; ok {
			page.RowDatas = append(page.RowDatas, r)
		}
	}
	return page, nil
}

// kwargsCond matches a top-level kwargs field by its JSON text, strings unquoted.
func (s *Store) kwargsCond(kwargs, key, value string) string {
	k, v := quoteString(key), quoteString(value)
	if s.schema.feat.jsonExtract {
		return fmt.Sprintf("(JSONHas(%[1]s, %[2]s) AND (JSONExtractRaw(%[1]s, %[2]s) = %[3]s OR JSONExtractString(%[1]s, %[2]s) = %[3]s))", kwargs, k, v)
	}
	return fmt.Sprintf("(visitParamHas(%[1]s, %[2]s) AND (visitParamExtractRaw(%[1]s, %[2]s) = %[3]s OR visitParamExtractString(%[1]s, %[2]s) = %[3]s))", kwargs, k, v)
}

// rangeConds selects rows of an element (if fullName is set) created in [start, end) (either
// may be zero: open). Each bound is written twice: on created_at in whole seconds, which the
// primary index and partition pruning use, and exactly, in milliseconds.
func rangeConds(fullName string, start, end time.Time) []string {
	conds := []string{"1"}
	if fullName != "" {
		conds = append(conds, "full_name = "+quoteString(fullName))
	} else {
		// Lag samples (logstore.KindLag) are not executions: only a query naming them sees them.
		conds = append(conds, "(full_name < 'lag:' OR full_name >= 'lag;')")
	}
	if !start.IsZero() {
		ms := start.UnixMilli()
		conds = append(conds,
			"created_at >= "+dateTime(floorDiv(ms, 1000)),
			createdMSExpr+" >= "+strconv.FormatInt(ms, 10))
	}
	if !end.IsZero() {
		ms := end.UnixMilli()
		conds = append(conds,
			"created_at <= "+dateTime(floorDiv(ms-1, 1000)),
			createdMSExpr+" < "+strconv.FormatInt(ms, 10))
	}
	if len(conds) > 1 {
		conds = conds[1:]
	}
	return conds
}

// dateTime is a DateTime literal for epoch second sec, clamped to DateTime's range so a bound
// outside it still compares the right way.
func dateTime(sec int64) string {
	sec = max(0, min(sec, math.MaxUint32))
	return "toDateTime(" + strconv.FormatInt(sec, 10) + ")"
}

// selectRows runs a query selecting rowSelect.
//
// These reads pick a few rows out of granules at scattered keys, so most of their cost is
// decompressing whole blocks; the uncompressed cache keeps recent blocks (above all those of the
// small columns, one 64 KiB block per 8–64k rows) for the next lookup, which about halves the
// cost of reading those columns once warm.
func (s *Store) selectRows(ctx context.Context, op, sql string) ([]logstore.Row, error) {
	rows, err := s.conn.Query(clickhouse.Context(ctx, pointRead), sql)
	if err != nil {
		return nil, s.fail(ctx, op, err)
	}
	defer rows.Close()
	var out []logstore.Row
	for rows.Next() {
		var (
			r                         logstore.Row
			status                    string
			attempt, seq              uint32
			created, start, end, dur  int64
			version                   uint64
			kwargs, result, logs      string
			hasError                  uint8
			errCode, errMsg, errStack string
		)
		if err := rows.Scan(&r.ID, &r.Kind, &r.FullName, &r.Sender, &r.EventType, &status, &r.Stage,
			&r.RequestID, &r.NodeID, &r.ParentNodeID, &attempt, &created, &version, &seq, &start, &end, &dur,
			&kwargs, &result, &hasError, &errCode, &errMsg, &errStack, &r.Host, &logs, &r.EventID); err != nil {
			return nil, s.fail(ctx, op, err)
		}
		r.Status = status
		r.Attempt = int(attempt)
		r.Seq = seq
		r.CreatedAt = time.UnixMilli(created).UTC()
		r.RecordedAt = time.UnixMilli(recordedOf(version)).UTC()
		r.StartTime, r.EndTime = msTime(start), msTime(end)
		r.Duration = dur
		r.Kwargs, r.Result, r.Logs = rawJSON(kwargs), rawJSON(result), rawJSON(logs)
		if hasError != 0 {
			r.Error = &logstore.RowError{Code: errCode, Message: errMsg, Stack: errStack}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(ctx, op, err)
	}
	return out, nil
}

func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func rawJSON(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

// newer reports whether a is a later state than b.
func newer(a, b *logstore.Row) bool {
	if !a.RecordedAt.Equal(b.RecordedAt) {
		return a.RecordedAt.After(b.RecordedAt)
	}
	if a.Seq != b.Seq {
		return a.Seq > b.Seq
	}
	return a.ID > b.ID
}

// latestByNode is each node's latest state; copies of one row ID fold naturally.
func latestByNode(rows []logstore.Row) map[string]logstore.Row {
	out := make(map[string]logstore.Row, len(rows))
	for i := range rows {
		r := &rows[i]
		if cur, ok := out[r.NodeID]; !ok || newer(r, &cur) {
			out[r.NodeID] = *r
		}
	}
	return out
}

// byCreated sorts latest states the way ByRequest and ByNode answer: CreatedAt, then NodeID.
func byCreated(m map[string]logstore.Row) []logstore.Row {
	out := slices.Collect(maps.Values(m))
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].NodeID < out[j].NodeID
	})
	return out
}

// span is a range of the log table's primary key: one element, created_at seconds lo…hi.
type span struct {
	fullName string
	lo, hi   uint32 // created_at seconds, inclusive
}

// spanCond restricts the log table to the spans, so a lookup by request or node reads a few
// granules instead of the table. Spans of a few seconds are spelled out as
// (full_name, created_at) IN (…) tuples, whose index analysis costs about a third of an OR of
// ranges; longer spans are ranges; past maxSpans everything becomes one range over their union.
func spanCond(spans []span) string {
	const maxExpand = 8 // seconds per span spelled out as tuples
	var tuples, ranges []string
	for _, sp := range spans {
		if sp.hi-sp.lo < maxExpand && len(tuples) < maxSpans*maxExpand {
			for sec := sp.lo; sec <= sp.hi; sec++ {
				tuples = append(tuples, fmt.Sprintf("(%s, %s)", quoteString(sp.fullName), dateTime(int64(sec))))
			}
			continue
		}
		ranges = append(ranges, fmt.Sprintf("(full_name = %s AND created_at >= %s AND created_at <= %s)",
			quoteString(sp.fullName), dateTime(int64(sp.lo)), dateTime(int64(sp.hi))))
	}
	if len(ranges) > maxSpans {
		names := make([]string, len(spans))
		lo, hi := spans[0].lo, spans[0].hi
		for i, sp := range spans {
			names[i] = quoteString(sp.fullName)
			lo, hi = min(lo, sp.lo), max(hi, sp.hi)
		}
		return fmt.Sprintf("(full_name IN (%s) AND created_at >= %s AND created_at <= %s)",
			strings.Join(names, ", "), dateTime(int64(lo)), dateTime(int64(hi)))
	}
	if len(tuples) > 0 {
		ranges = append(ranges, "(full_name, created_at) IN ("+strings.Join(tuples, ", ")+")")
	}
	return "(" + strings.Join(ranges, " OR ") + ")"
}

// rowsOf reads every stored row whose column col equals key, in one query: the keys table
// gives the (full_name, created_at) keys where they lie, and the log table is read at those
// keys only (IN with a subquery uses the primary index). In Distributed mode the subquery names
// the shard-local keys table: each shard's view indexes that shard's rows, and a request's rows
// (and so its nodes') all live on one shard, so the local set is the right one.
func (s *Store) rowsOf(ctx context.Context, op, col, key string) ([]logstore.Row, error) {
	return s.selectRows(ctx, op, fmt.Sprintf("SELECT %s FROM %s PREWHERE %s = %s WHERE (full_name, created_at) IN (SELECT full_name, created_at FROM %s WHERE key_hash = cityHash64(%s))",
		rowSelect, s.schema.logTable(), col, quoteString(key), s.schema.qualified(s.schema.localKeysName()), quoteString(key)))
}

// ByRequest is getEventLogByRequestId: every node of the request, latest state each, by
// CreatedAt then NodeID. An unknown request is an empty answer.
func (s *Store) ByRequest(ctx context.Context, requestID string) ([]logstore.Row, error) {
	if err := s.checkOpen("byRequest"); err != nil {
		return nil, err
	}
	if requestID == "" {
		return nil, fmt.Errorf("chstore: byRequest: %w: requestId is empty", logstore.ErrInvalidQuery)
	}
	rows, err := s.rowsOf(ctx, "byRequest", "request_id", requestID)
	if err != nil {
		return nil, err
	}
	return byCreated(latestByNode(rows)), nil
}

// ByNode is getEventLogByNodeId: the node and every descendant (by ParentNodeID) within the
// request, latest state each, by CreatedAt then NodeID. A node not in the request is an empty
// answer.
func (s *Store) ByNode(ctx context.Context, requestID, nodeID string) ([]logstore.Row, error) {
	if err := s.checkOpen("byNode"); err != nil {
		return nil, err
	}
	switch {
	case requestID == "":
		return nil, fmt.Errorf("chstore: byNode: %w: requestId is empty", logstore.ErrInvalidQuery)
	case nodeID == "":
		return nil, fmt.Errorf("chstore: byNode: %w: nodeId is empty", logstore.ErrInvalidQuery)
	}
	rows, err := s.rowsOf(ctx, "byNode", "request_id", requestID)
	if err != nil {
		return nil, err
	}
	nodes := latestByNode(rows)
	if _, ok := nodes[nodeID]; !ok {
		return []logstore.Row{}, nil
	}
	children := map[string][]string{}
	for id, r := range nodes {
		if r.ParentNodeID != "" {
			children[r.ParentNodeID] = append(children[r.ParentNodeID], id)
		}
	}
	keep := map[string]logstore.Row{}
	queue := []string{nodeID}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		if _, seen := keep[id]; seen {
			continue // a cycle in bad data must not loop forever
		}
		keep[id] = nodes[id]
		queue = append(queue, children[id]...)
	}
	return byCreated(keep), nil
}

// Attempts is every recorded state of a node (copies of a row ID once), oldest first by
// RecordedAt then Seq. An unknown node is an empty answer.
func (s *Store) Attempts(ctx context.Context, nodeID string) ([]logstore.Row, error) {
	if err := s.checkOpen("attempts"); err != nil {
		return nil, err
	}
	if nodeID == "" {
		return nil, fmt.Errorf("chstore: attempts: %w: nodeId is empty", logstore.ErrInvalidQuery)
	}
	rows, err := s.rowsOf(ctx, "attempts", "node_id", nodeID)
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(rows))
	out := make([]logstore.Row, 0, len(rows))
	for _, r := range rows {
		if !seen[r.ID] {
			seen[r.ID] = true
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return newer(&out[j], &out[i]) })
	return out, nil
}
