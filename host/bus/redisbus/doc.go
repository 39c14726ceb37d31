// Package redisbus is the bus.Bus on Redis Streams and consumer groups (go-redis/v9), shared by
// every host of a cluster.
//
// A topic is a stream (key Options.Prefix + topic; on a Redis Cluster Options.Prefix + "{" +
// topic + "}", so topics spread over the masters); a group is a consumer group of it; a consumer
// is a Redis consumer named by SubscribeOptions.Consumer. One server, a Redis Cluster or a
// master behind Sentinel (host/redisconn's URLs) serve alike: no command touches two slots (a
// many-stream read names streams of one slot; on a cluster, where each topic is a slot of its
// own, that is mostly one stream). It owns:
//   - publishing: XADD, with concurrent Publish calls and the acks of every subscription
//     gathered into one pipeline per round trip;
//   - reading (reader.go): subscriptions of one group and consumer (on a cluster, of one hash
//     slot too: a multi-key command may not span slots) share a reader of up to ReadStreams
//     streams. Its blocking loop holds one connection and waits in one
//     XREADGROUP GROUP g c COUNT n BLOCK t STREAMS k1 … kn > … > over the subscriptions whose
//     stream is drained and that have credit (n: the least credit among them); CLIENT UNBLOCK
//     ends that wait when the set must change (a stream joins, a subscription closes). Its
//     direct loop reads, without blocking and on a small pool, what the blocking read cannot
//     serve: a subscription's own pending entries first (a host restarting under its id gets
//     them back at once), and streams with a backlog as their subscription's credit comes back
//     (an ack wakes it). An idle host holds one connection per reader, whatever the number of
//     subscriptions. Redis blocks and wakes a read for every stream it names, so a stream that
//     brings entries moves to a hot reader of at most HotStreams streams, and back to the cold
//     ones (ReadStreams) after HotFor without entries;
//   - acks, batched: XACK with many ids, flushed every AckInterval, at AckBatch ids, or with the
//     next Publish;
//   - nack: the entry stays in the group's pending list and is handed to the same subscription
//     again before anything new (Redis 7.0 has no XNACK); a Lua script checks the entry is still
//     this consumer's and bumps its delivery counter (XCLAIM … RETRYCOUNT … JUSTID);
//   - liveness (maintain.go): a heartbeat every ClaimAfter/4 refreshes the idle time of every
//     entry a subscription holds (the same script with plain JUSTID), so an alive but slow
//     consumer never loses its message to a claim;
//   - claims: every ClaimAfter/2, XAUTOCLAIM takes entries idle for ClaimAfter (a dead
//     consumer's) into a subscription, up to its free prefetch. Subscriptions of one ClaimAfter
//     share one ticker, and each round is one pipeline for all of them;
//   - trimming: every TrimInterval, XTRIM MINID below the lowest entry any group of the topic
//     still needs (its first pending entry, or the one after its last delivered), for the
//     topics this bus touched since (acked, subscribed, deleted a group), in three pipelines;
//   - failure: commands fail fast with bus.ErrUnavailable while Redis is down; subscriptions
//     retry with backoff and resume, recreating their group if Redis lost it.
//
// It must not: lose an entry XADD acknowledged while a group exists, XDEL anything, trim a topic
// without groups, or block Publish behind a subscription's blocking read.
package redisbus
