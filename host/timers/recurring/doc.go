// Package recurring runs the cron and interval task templates of docs/reference.md §4 (tasks.NormalType
// with repeatType "cron" or "interval") on their own, on exactly one host of the cluster per tick.
//
// It owns:
//   - scheduling: every host keeps one github.com/go-co-op/gocron/v2 job per enabled template; a
//     cron template ticks at its cron times in its Location, an interval template at the
//     multiples of its interval since the Unix epoch, so a tick's scheduled time (Tick.At) is the
//     same on every host whatever its start time;
//   - exactly once: every host's timer goes off, and Coordinator.ClaimTick picks the one host
//     that runs the tick (redislock in a cluster, locallock embedded);
//   - concurrency across hosts: "serial" ticks wait for the template's previous run wherever it
//     runs, "discard" ticks are dropped while one runs, "parallel" ticks just run
//     (Coordinator.AcquireRun is the cluster-wide run lock);
//   - misfire: after downtime, "fireOnce" runs one catch-up tick for the ticks missed since the
//     template's last claimed tick, "skip" runs none;
//   - reloads: Sync makes the scheduled set equal to the enabled templates without a restart.
//
// It must not run a task's code, write task records or know about e.json, JavaScript or the
// registry: Options.Fire is the host's callback for one tick, Template is the already validated
// part of a template this package needs. Backends live in subpackages and import this package,
// never the reverse. Ticks never run before their scheduled time.
package recurring
