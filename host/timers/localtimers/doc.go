// Package localtimers is the embedded timers.Store, the default when no Redis is configured: one
// SQLite database file (modernc.org/sqlite, pure Go) in the data directory (DATA/timers.db),
// persistent across restarts.
//
// It owns that file and its schema: one tasks table whose rowid (seq) is the creation order,
// indexed for claiming (status, start_time), for expired leases, for the unique key of waiting
// tasks, and for listing by status or fullName newest first. Writes go through one connection in
// BEGIN IMMEDIATE transactions, so claims are exclusive even between two handles on one file;
// reads use a small pool in WAL mode. Force-ends reach ForcedEnds through an in-process hub
// shared by every handle on the same file in this process (two processes on one file would not
// see each other's force-ends: the embedded store serves one host).
//
// It must not run tasks (timers.Runner does), and it knows nothing of Redis, the host or HTTP.
package localtimers
