// Package redislock is the recurring.Coordinator of a cluster, on Redis (go-redis/v9): every
// host's Scheduler asks it which host runs each tick of each cron or interval template.
//
// Keys, all under the prefix and hash-tagged by template so one template's keys share a
// cluster slot:
//   - {template}:tick:<unix nanos>: the claim of one tick, SET NX by the winning host; it expires
//     after a day, long after every host's timer for that tick has gone off;
//   - {template}:last: the latest claimed tick (zero-padded unix nanos), raised by the same
//     script that claims, so it never goes back; it does not expire (misfire catch-up needs it
//     after any downtime);
//   - {template}:run: the run lock of serial and discard templates: a random token with a ttl,
//     renewed by the holder's lease every ttl/3 and deleted on release only by its holder.
//
// Concurrent calls share round trips: commands issued while a pipeline is in flight go out
// together in the next one (10,000 templates ticking in the same second cost a few dozen round
// trips per host, not 10,000).
//
// It must not own the Redis client (the host does, and closes it), FLUSH anything, or touch
// keys outside its prefix.
package redislock
