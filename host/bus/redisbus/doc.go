// Package redisbus is the bus.Bus on Redis Streams and consumer groups (go-redis/v9), shared by
// every host of a cluster.
//
// A topic is a stream (key Options.Prefix + topic; on a Redis Cluster Options.Prefix + "{" +
// topic + "}", so topics spread over the masters); a group is a consumer group of it; a consumer
// is a Redis consumer named by SubscribeOptions.Consumer. One server, a Redis Cluster or a
// master behind Sentinel (host/redisconn's URLs) serve alike: every command touches one stream,
// so nothing needs two slots. It owns:
//   - publishing: XADD, with concurrent Publish calls and the acks of every subscription
//     gathered into one pipeline per round trip;
//   - reading: per subscription, one XREADGROUP … COUNT n BLOCK t at a time on a connection of
//     its own (to the master of the topic's slot on a cluster; CLIENT UNBLOCK there ends it on
//     Close), first the consumer's own pending entries (a host restarting under its id gets
//     them back at once), then new ones;
//   - acks, batched: XACK with many ids, flushed every AckInterval, at AckBatch ids, or with the
//     next Publish;
//   - nack: the entry stays in the group's pending list and is handed to the same subscription
//     again before anything new (Redis 7.0 has no XNACK); a Lua script checks the entry is still
//     this consumer's and bumps its delivery counter (XCLAIM … RETRYCOUNT … JUSTID);
//   - liveness: a heartbeat every ClaimAfter/4 refreshes the idle time of every entry the
//     subscription holds (the same script with plain JUSTID), so an alive but slow consumer never
//     loses its message to a claim;
//   - claims: every ClaimAfter/2, XAUTOCLAIM takes entries idle for ClaimAfter (a dead
//     consumer's) into this consumer, up to its free prefetch;
//   - trimming: every TrimInterval, XTRIM MINID below the lowest entry any group of the topic
//     still needs (its first pending entry, or the one after its last delivered);
//   - failure: commands fail fast with bus.ErrUnavailable while Redis is down; subscriptions
//     retry with backoff and resume, recreating their group if Redis lost it.
//
// It must not: lose an entry XADD acknowledged while a group exists, XDEL anything, trim a topic
// without groups, or block Publish behind a subscription's blocking read.
package redisbus
