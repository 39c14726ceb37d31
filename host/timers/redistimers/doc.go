// Package redistimers is the timers.Store of a cluster: tasks live in Redis (go-redis v9), so
// every host sees them and each due task is claimed by exactly one host, whichever it is.
//
// It owns the keys under its prefix (the host uses "trellis:<app>:timers:"; their layout is in
// scripts.go): a small hash per task, sorted sets of waiting tasks by start time and of running
// tasks by lease expiry, a key index for date-field tasks, a creation index and counts for List,
// and a log of force-ends. Every state change is one Lua script, so claims, key replacements
// and force-ends are atomic across hosts. Force-ends reach every runner through the log, polled
// every 100ms, which survives a dropped connection (pub/sub would not).
//
// Claims compare with the claiming host's clock and lease renewals use the renewing host's, so
// host clocks must agree to well within two thirds of the runner's Lease (NTP does).
// Times set by the store are kept to the millisecond; a StartTime keeps its full precision and
// its due score is rounded up, so a task never fires early. On a Redis Cluster every key must
// share one slot, since the scripts reach task hashes through the prefix: New tags a prefix that
// has no hash tag ("{trellis:app:timers}:"), which puts an app's tasks on one master.
//
// It must not run tasks (timers.Runner does) and does not own the Redis client it is given.
package redistimers
