package localtimers

// schemaVersion is stored in PRAGMA user_version; Open refuses a database with a newer one.
// Version 2 added first_started_at (task retries), version 3 paused_with and the requests table
// (request operations); Open adds them to an older file.
const schemaVersion = 3

// schema is idempotent DDL. Times are Unix nanoseconds (0 = zero time); JSON columns hold
// argDict, result and error as the API shows them.
//
// seq (the rowid, AUTOINCREMENT so never reused) is the creation order: List pages by it
// instead of a created_at index. Each index serves one query:
//   - tasks_due (status, start_time): Claim's due tasks, NextDue, Pending and List by status;
//   - tasks_lease (lease_until) of running tasks only: expired leases and NextDue;
//   - tasks_key: the unique key among waiting tasks (Create's replace, RemoveKey);
//   - tasks_status_seq, tasks_name_seq: List filtered by status or fullName, newest first;
//   - tasks_request: the tasks of a request (OperateRequest).
//
// requests holds the state of each request an operation holds (paused or revoked, with the
// error a revoke ends its tasks with): Create and Retry read it in their transaction.
const schema = `
CREATE TABLE IF NOT EXISTS tasks (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	id          TEXT    NOT NULL UNIQUE,
	full_name   TEXT    NOT NULL,
	func_name   TEXT    NOT NULL,
	task_type   TEXT    NOT NULL,
	arg_dict    TEXT    NOT NULL,
	start_time  INTEGER NOT NULL,
	status      TEXT    NOT NULL,
	result      TEXT    NOT NULL,
	error       TEXT,
	request_id  TEXT    NOT NULL,
	node_id     TEXT    NOT NULL,
	key         TEXT    NOT NULL,
	attempt     INTEGER NOT NULL,
	owner       TEXT    NOT NULL,
	lease_until INTEGER NOT NULL,
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL,
	started_at  INTEGER NOT NULL,
	ended_at    INTEGER NOT NULL,
	first_started_at INTEGER NOT NULL DEFAULT 0,
	paused_with TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS tasks_due ON tasks (status, start_time);
CREATE INDEX IF NOT EXISTS tasks_lease ON tasks (lease_until) WHERE status = 'running';
CREATE UNIQUE INDEX IF NOT EXISTS tasks_key ON tasks (key) WHERE status = 'waiting' AND key <> '';
CREATE INDEX IF NOT EXISTS tasks_status_seq ON tasks (status, seq);
CREATE INDEX IF NOT EXISTS tasks_name_seq ON tasks (full_name, seq);
CREATE INDEX IF NOT EXISTS tasks_request ON tasks (request_id) WHERE request_id <> '';
CREATE TABLE IF NOT EXISTS requests (
	request_id TEXT    PRIMARY KEY,
	state      TEXT    NOT NULL,
	error      TEXT,
	updated_at INTEGER NOT NULL
) WITHOUT ROWID;
`

// addedColumns are the columns of later versions, each with its ADD COLUMN: Open adds those a
// file of an older version lacks (version 1 lacks first_started_at).
var addedColumns = []struct{ name, ddl string }{
	{"first_started_at", `ALTER TABLE tasks ADD COLUMN first_started_at INTEGER NOT NULL DEFAULT 0`},
	{"paused_with", `ALTER TABLE tasks ADD COLUMN paused_with TEXT NOT NULL DEFAULT ''`},
}

const columns = `id, full_name, func_name, task_type, arg_dict, start_time, status, result, error,
	request_id, node_id, key, attempt, owner, created_at, updated_at, started_at, ended_at, first_started_at, paused_with`
