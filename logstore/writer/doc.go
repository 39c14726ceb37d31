// Package writer puts a durable, batching spool in front of any logstore.Store, so the engine
// can record every execution at high volume without losing a row when the store is slow, down,
// or the host process dies.
//
// It owns: the spool directory (an appendlog of host/embedded: checksummed segment files,
// group-committed with one fsync shared by concurrent writers, replayed after a crash, a torn tail
// cut off) and the encoding of rows in it, the batching of spooled rows into inserts (by size or
// by time, one insert in flight), retries with exponential backoff and jitter, and back-pressure
// when the spool is full. A Write returns nil only once its rows are on disk; a segment is deleted
// only once every row in it was inserted. Batches are read back from the spool, so a retried batch
// carries the same row IDs and the store's idempotency on Row.ID makes a retry whose first try
// secretly succeeded harmless.
//
// It must not: know anything about a backend beyond logstore.Store, query the log, drop a row
// it acknowledged, or hold more than MaxSpoolBytes of not-yet-inserted rows. It does not own
// the Store either: the caller opens and closes it.
package writer
