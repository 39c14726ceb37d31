package localstore

// schemaVersion is stored in PRAGMA user_version; Open refuses a database with a newer one and
// brings an older one up to date with migrations.
const schemaVersion = 2

// migrations[v] brings a database of version v to v+1; a new database gets schema at once.
var migrations = map[int]string{
	1: `ALTER TABLE states ADD COLUMN event_id TEXT`,
}

// schema is idempotent DDL. Times are Unix milliseconds (NULL = zero time) and statuses small
// integers (statusCodes), which keeps rows and indexes compact.
//
// states holds every state row. Its unique index (created_at, node_id, id) makes a retried batch a
// no-op, finds a node's states (Attempts looks the node's created_at up in nodes first) and
// serves retention; it leads with created_at because random ids as the first column would
// scatter each batch over the whole index, and at a million rows writing those pages back cost
// more than all else. nodes
// holds one row per node with the columns queries filter on, copied from the node's latest state
// (latest is that state's id; latestJoin finds it through states_key). Each nodes index serves a
// query:
//   - nodes_name_time, nodes_name_status_time: getEventLog of one element, newest first, with or
//     without a status; nodes_name_time also covers analytics of one element;
//   - nodes_status_time: getEventLog of every element by status;
//   - nodes_time: getEventLog of every element, and analytics of every element and retention over
//     a time range (it covers full_name, status and duration, so they never read the table);
//   - nodes_request: ByRequest and the call-tree walk of ByNode.
//
// nodes declares no NOT NULL: only Insert writes it, from validated rows, and a constraint that
// could abort a multi-row upsert makes SQLite keep a statement journal of every page the
// upsert touches (a tenth of the ingest time at a million rows).
const schema = `
CREATE TABLE IF NOT EXISTS states (
	id             TEXT    NOT NULL,
	node_id        TEXT    NOT NULL,
	recorded_at    INTEGER NOT NULL,
	seq            INTEGER NOT NULL,
	created_at     INTEGER NOT NULL,
	kind           TEXT    NOT NULL,
	full_name      TEXT    NOT NULL,
	sender         TEXT    NOT NULL,
	event_type     TEXT    NOT NULL,
	status         INTEGER NOT NULL,
	stage          TEXT    NOT NULL,
	request_id     TEXT    NOT NULL,
	parent_node_id TEXT    NOT NULL,
	attempt        INTEGER NOT NULL,
	start_time     INTEGER,
	end_time       INTEGER,
	duration       INTEGER NOT NULL,
	kwargs         TEXT,
	result         TEXT,
	error          TEXT,
	host           TEXT    NOT NULL,
	logs           TEXT,
	event_id       TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS states_key ON states(created_at, node_id, id);

CREATE TABLE IF NOT EXISTS nodes (
	node_id        TEXT,
	full_name      TEXT,
	status         INTEGER,
	created_at     INTEGER,
	recorded_at    INTEGER,
	seq            INTEGER,
	request_id     TEXT,
	parent_node_id TEXT,
	sender         TEXT,
	host           TEXT,
	error_code     TEXT,
	duration       INTEGER,
	latest         TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS nodes_node ON nodes(node_id);
CREATE INDEX IF NOT EXISTS nodes_name_time ON nodes(full_name, created_at, status, duration);
CREATE INDEX IF NOT EXISTS nodes_name_status_time ON nodes(full_name, status, created_at);
CREATE INDEX IF NOT EXISTS nodes_status_time ON nodes(status, created_at);
CREATE INDEX IF NOT EXISTS nodes_time ON nodes(created_at, full_name, status, duration);
CREATE INDEX IF NOT EXISTS nodes_request ON nodes(request_id, parent_node_id);
`

// insertStatesSQL inserts a chunk of state rows; stateParams placeholders a row.
const insertStatesSQL = `INSERT OR IGNORE INTO states (id, node_id, recorded_at, seq, created_at, kind,
	full_name, sender, event_type, status, stage, request_id, parent_node_id, attempt, start_time,
	end_time, duration, kwargs, result, error, host, logs, event_id) VALUES `

const stateParams = 23

// upsertNodesSQL replaces a node's row only with a newer state: greater (recorded_at, seq). It sets
// only what changes between states of a node (fullName, createdAt, requestId, parentNodeId and
// sender do not), because SQLite rewrites the entries of every index on a column an UPDATE sets.
const (
	upsertNodesSQL = `INSERT INTO nodes (node_id, full_name, status, created_at, recorded_at, seq,
	request_id, parent_node_id, sender, host, error_code, duration, latest) VALUES `
	upsertNodesConflict = `
	ON CONFLICT (node_id) DO UPDATE SET status = excluded.status, recorded_at = excluded.recorded_at,
		seq = excluded.seq, host = excluded.host, error_code = excluded.error_code,
		duration = excluded.duration, latest = excluded.latest
	WHERE (excluded.recorded_at, excluded.seq) > (nodes.recorded_at, nodes.seq)`
	nodeParams = 13
)

// latestJoin joins nodes n to the state row of their latest state, s.
const latestJoin = ` JOIN states s ON s.created_at = n.created_at AND s.node_id = n.node_id AND s.id = n.latest`

// stateCols are the columns rowScanner reads, in its order; s is the states table.
const stateCols = `s.id, s.kind, s.full_name, s.sender, s.event_type, s.status, s.stage,
	s.request_id, s.node_id, s.parent_node_id, s.attempt, s.created_at, s.recorded_at, s.seq,
	s.start_time, s.end_time, s.duration, s.kwargs, s.result, s.error, s.host, s.logs, s.event_id`
