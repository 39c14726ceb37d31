// Package redisspool is the execution log's durable buffer for a cluster: one Redis stream that
// every host appends its rows to before it acknowledges them, and that every host drains into
// the shared log store (ClickHouse). A row a host acknowledged then waits on the shared Redis,
// not on that host's disk: when a host dies — a container stopped, a machine lost with its
// disk — the rows it wrote are inserted by the others, and a batch it was inserting is taken
// over. The file spool of logstore/writer cannot promise that: its rows come back only when the
// same host restarts on the same disk.
//
// It owns: the stream (Options.Key) and its consumer group; the group commit of concurrent
// Writes into one XADD; the drain (entries read with XREADGROUP into batches of up to BatchRows
// rows, inserted, then XACK and XDEL in one round trip); the takeover of a dead drainer's entries
// (XAUTOCLAIM once they were idle ClaimAfter); back-pressure on the stream's length; retries of
// Redis and of the store with backoff. Rows are encoded as the file spool encodes them
// (writer.AppendPayload), several Writes' rows per entry.
//
// It must not: know a backend beyond logstore.Store and Redis, drop a row it acknowledged, or
// delete an entry before the store has its rows. An insert repeated by a takeover (the first
// drainer inserted, then died before its XACK) is harmless: every store is idempotent on Row.ID.
//
// Rows are as durable as Redis makes them: with appendonly yes and appendfsync everysec, a Redis
// crash can lose the last second of acknowledged rows; appendfsync always loses none
// (docs/cluster.md).
package redisspool
