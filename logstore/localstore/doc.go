// Package localstore is the embedded execution-log backend, the default when no ClickHouse is
// configured: one SQLite database (modernc.org/sqlite, pure Go, no cgo) in a directory the host
// gives it (DATA/logs), persistent across restarts.
//
// It owns that directory's database file and its schema, and implements logstore.Store:
// every state row goes into a states table (primary key ID, so a retried batch adds nothing),
// and a nodes table keeps the latest state of each node, replaced only by a newer
// (RecordedAt, Seq); queries read nodes, indexed for getEventLog's filters and for requests.
// One writer connection applies each Insert in one transaction; several reader connections
// answer queries in WAL mode without waiting for it. Percentiles are computed exactly in Go.
//
// It must not batch, spool or retry (logstore/writer does that in front of any Store), and it
// knows nothing of ClickHouse, the host or HTTP.
package localstore
