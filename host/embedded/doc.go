// Package embedded holds plumbing shared by the embedded backends (the local bus, the log
// writer's spool, the SQLite stores): a durable append-only log (appendlog) and one way of
// opening SQLite (sqlitedb).
//
// It must not import anything of ours: the backends build on it, never the other way round.
package embedded
