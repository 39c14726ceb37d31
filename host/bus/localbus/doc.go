// Package localbus is the embedded bus.Bus: durable topics, consumer groups, acks, redelivery
// and claims for one process, persistent in a directory (the host passes DATA/bus), with
// nothing to install.
//
// It owns: the directory (an appendlog of host/embedded: a checksummed log of what changed —
// topics, groups, published messages, deliveries, acks, trims — group-committed with one fsync
// shared by concurrent publishers, replayed on open with a torn tail cut off, and rewritten as a
// compact snapshot when it has grown to several times the live data), and the in-memory state that
// the log rebuilds: the messages still on each topic, and per group its cursor and its pending
// deliveries with their consumer and delivery count. Publish returns only once its messages are on
// disk; consumers see a message only once it is.
//
// Why a log and not SQLite: every bus operation is a small state change that the process keeps
// in memory anyway to wake subscribers and hand out deliveries; writing each change once to a
// log costs one append and a share of an fsync, where SQLite would add a B-tree insert, update
// and delete per message, reads on the delivery path, and its own WAL (docs/bus.md has the
// figures).
//
// It must not: be opened by two processes at once (the directory is locked), keep more than
// Options.MaxBacklogBytes of unacknowledged payload in memory (Publish fails with
// ErrBacklogFull instead), or drop a message a group has not acknowledged.
package localbus
