// Package locallock is the embedded recurring.Coordinator for a single-process host: tick claims
// and last ticks live in a small SQLite file (modernc.org/sqlite, no cgo) in the data directory,
// so misfire catch-up and exactly-once hold across restarts; run locks live in memory, since
// the only process that could hold one is this one.
//
// It must not be shared by two processes: SQLite would serialize them, but the run locks would
// not. A cluster uses redislock.
package locallock
