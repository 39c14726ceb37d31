package redisbus

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/host/bus/redisbus/redistest"
)

func recv(t *testing.T, sub bus.Subscription, timeout time.Duration) bus.Delivery {
	t.Helper()
	select {
	case d, ok := <-sub.Deliveries():
		require.True(t, ok, "subscription ended")
		return d
	case <-time.After(timeout):
		t.Fatalf("no delivery within %s", timeout)
		return nil
	}
}

func client(t testing.TB, url string) redis.UniversalClient { return redistest.Client(t, url) }

func TestOptions(t *testing.T) {
	t.Parallel()
	for _, o := range []Options{
		{},
		{URL: "http://nope"},
		{URL: "redis://127.0.0.1:1/0", Block: time.Millisecond},
		{URL: "redis://127.0.0.1:1/0", AckBatch: -1},
		{URL: "redis://127.0.0.1:1/0", MaxPipeline: 2},
		{URL: "redis://127.0.0.1:1/0", OpTimeout: time.Millisecond},
		{URL: "redis://127.0.0.1:1/0", DefaultClaimAfter: -time.Second},
		{URL: "redis+sentinel://127.0.0.1:1"}, // no master_name
		{URL: "redis+cluster://127.0.0.1:1,127.0.0.1:2", Prefix: "trellis:{app}:"},
	} {
		_, err := New(o)
		require.ErrorIs(t, err, ErrInvalidOptions, "%+v", o)
	}
}

// With nothing listening, every call fails fast with bus.ErrUnavailable naming the address,
// and Close still returns.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	b := newBus(t, Options{URL: "redis://" + addr + "/0"})
	ctx := t.Context()
	start := time.Now()
	_, err = b.Publish(ctx, "t", &bus.Message{Payload: []byte("x")})
	require.ErrorIs(t, err, bus.ErrUnavailable)
	require.Contains(t, err.Error(), addr)
	_, err = b.Subscribe(ctx, "t", "g", bus.SubscribeOptions{Consumer: "c"})
	require.ErrorIs(t, err, bus.ErrUnavailable)
	_, err = b.Lag(ctx, "t")
	require.ErrorIs(t, err, bus.ErrUnavailable)
	require.ErrorIs(t, b.DeleteGroup(ctx, "t", "g"), bus.ErrUnavailable)
	require.Less(t, time.Since(start), 5*time.Second, "failing took too long")
	require.NoError(t, b.Close())
}

// Redis goes away for a while and comes back with its data: Publish fails with
// bus.ErrUnavailable meanwhile, the subscription waits, then resumes on its own, and acks
// queued during the outage reach Redis.
func TestOutageAndResume(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	b := newBus(t, testOptions(srv.URL(), "trellis:bus:"))
	ctx := t.Context()
	sub, err := b.Subscribe(ctx, "t", "g", bus.SubscribeOptions{Consumer: "c", Prefetch: 2})
	require.NoError(t, err)
	_, err = b.Publish(ctx, "t", &bus.Message{Payload: []byte("before")})
	require.NoError(t, err)
	held := recv(t, sub, 10*time.Second)

	srv.Kill()
	start := time.Now()
	_, err = b.Publish(ctx, "t", &bus.Message{Payload: []byte("during")})
	require.ErrorIs(t, err, bus.ErrUnavailable)
	require.Less(t, time.Since(start), 5*time.Second)
	require.NoError(t, held.Ack(ctx), "an ack is queued while Redis is down")
	_, err = b.Lag(ctx, "t")
	require.ErrorIs(t, err, bus.ErrUnavailable)

	srv.Start()
	_, err = b.Publish(ctx, "t", &bus.Message{Payload: []byte("after")})
	require.NoError(t, err)
	d := recv(t, sub, 20*time.Second)
	require.Equal(t, "after", string(d.Message().Payload))
	require.NoError(t, d.Ack(ctx))
	require.Eventually(t, func() bool {
		lags, err := b.Lag(ctx, "t")
		return err == nil && len(lags) == 1 && lags[0].Pending == 0 && lags[0].Undelivered == 0
	}, 20*time.Second, 20*time.Millisecond, "the ack queued during the outage reached Redis")
}

// Redis restarts without its data (no persistence): the subscription recreates its group and
// goes on with what is published afterwards.
func TestGroupLost(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	b := newBus(t, testOptions(srv.URL(), "trellis:bus:"))
	ctx := t.Context()
	sub, err := b.Subscribe(ctx, "t", "g", bus.SubscribeOptions{Consumer: "c"})
	require.NoError(t, err)
	_, err = b.Publish(ctx, "t", &bus.Message{Payload: []byte("one")})
	require.NoError(t, err)
	require.NoError(t, recv(t, sub, 10*time.Second).Ack(ctx))
	require.NoError(t, client(t, srv.URL()).FlushAll(ctx).Err()) // the private server: data gone
	_, err = b.Publish(ctx, "t", &bus.Message{Payload: []byte("two")})
	require.NoError(t, err)
	d := recv(t, sub, 20*time.Second)
	require.Equal(t, "two", string(d.Message().Payload))
	require.NoError(t, d.Ack(ctx))
}

// A nack keeps the entry in the group's pending list (nothing to lose in a crash) and bumps its
// delivery counter in Redis; a heartbeat keeps the idle time of held entries low.
func TestNackAndHeartbeatInRedis(t *testing.T) {
	t.Parallel()
	eachRedis(t, testNackAndHeartbeatInRedis)
}

func testNackAndHeartbeatInRedis(t *testing.T, url string) {
	opts := testOptions(url, newPrefix(t, url))
	b := newBus(t, opts)
	c := client(t, url)
	ctx := t.Context()
	ids, err := b.Publish(ctx, "t", &bus.Message{Payload: []byte("x")})
	require.NoError(t, err)
	sub, err := b.Subscribe(ctx, "t", "g", bus.SubscribeOptions{Consumer: "c", ClaimAfter: 400 * time.Millisecond})
	require.NoError(t, err)
	d := recv(t, sub, 10*time.Second)
	require.NoError(t, d.Nack(ctx))
	d = recv(t, sub, 10*time.Second)
	require.Equal(t, 2, d.Deliveries())
	pend, err := c.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: b.key("t"), Group: "g", Start: "-", End: "+", Count: 10}).Result()
	require.NoError(t, err)
	require.Len(t, pend, 1)
	require.Equal(t, ids[0], pend[0].ID)
	require.Equal(t, "c", pend[0].Consumer)
	require.Equal(t, int64(2), pend[0].RetryCount)
	// Held for ten heartbeats (ClaimAfter/4 = 100ms each): the idle time stays below ClaimAfter.
	time.Sleep(time.Second)
	pend, err = c.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: b.key("t"), Group: "g", Start: "-", End: "+", Count: 10}).Result()
	require.NoError(t, err)
	require.Len(t, pend, 1)
	require.Less(t, pend[0].Idle, 400*time.Millisecond, "the heartbeat refreshes the idle time")
	require.NoError(t, d.Ack(ctx))
}

// Acks are batched: a burst of acks costs a few XACK commands, not one each, and Publish
// batches concurrent calls into pipelines.
func TestAcksBatched(t *testing.T) {
	t.Parallel()
	eachRedis(t, testAcksBatched)
}

func testAcksBatched(t *testing.T, url string) {
	opts := testOptions(url, newPrefix(t, url))
	opts.AckInterval = 50 * time.Millisecond
	b := newBus(t, opts)
	ctx := t.Context()
	const n = 200
	msgs := make([]*bus.Message, n)
	for i := range msgs {
		msgs[i] = &bus.Message{Payload: []byte(fmt.Sprint(i))}
	}
	sub, err := b.Subscribe(ctx, "t", "g", bus.SubscribeOptions{Consumer: "c", Prefetch: n})
	require.NoError(t, err)
	_, err = b.Publish(ctx, "t", msgs...)
	require.NoError(t, err)
	for range n {
		require.NoError(t, recv(t, sub, 10*time.Second).Ack(ctx))
	}
	lags, err := b.Lag(ctx, "t") // sends what is still queued
	require.NoError(t, err)
	require.Equal(t, int64(0), lags[0].Pending)
	counts := b.counter.snapshot()
	t.Logf("commands for %d messages: %v", n, counts)
	require.Equal(t, int64(n), counts["xadd"])
	require.LessOrEqual(t, counts["xack"], int64(n/20), "acks are sent in batches: %v", counts)
	require.LessOrEqual(t, counts["xreadgroup"], int64(n/10), "reads take many entries at once: %v", counts)
	require.Positive(t, counts["xreadgroup"], "the readers' commands are counted too (on a cluster they run on node clients)")
}

// On a Redis Cluster each topic's stream is tagged by its topic, so the topics of many
// listeners spread over every master, and a subscription reads from the master of its topic.
func TestClusterTopicsSpread(t *testing.T) {
	t.Parallel()
	url := clusterURL(t)
	b := newBus(t, testOptions(url, newPrefix(t, url)))
	c := client(t, url).(*redis.ClusterClient)
	ctx := t.Context()
	byNode := map[string]string{} // master address -> a topic on it
	for i := 0; i < 64 && len(byNode) < 3; i++ {
		topic := fmt.Sprintf("listener:events.E%d", i)
		node, err := c.MasterForKey(ctx, b.key(topic))
		require.NoError(t, err)
		if _, ok := byNode[node.Options().Addr]; !ok {
			byNode[node.Options().Addr] = topic
		}
	}
	require.Len(t, byNode, 3, "64 topics over three masters")
	for addr, topic := range byNode {
		sub, err := b.Subscribe(ctx, topic, "g", bus.SubscribeOptions{Consumer: "c"})
		require.NoError(t, err)
		_, err = b.Publish(ctx, topic, &bus.Message{Payload: []byte(addr)})
		require.NoError(t, err)
		d := recv(t, sub, 10*time.Second)
		require.Equal(t, addr, string(d.Message().Payload))
		require.NoError(t, d.Ack(ctx))
		n, err := client(t, "redis://"+addr+"/0").XLen(ctx, b.key(topic)).Result()
		require.NoError(t, err, "the stream lives on %s", addr)
		require.Equal(t, int64(1), n)
		require.NoError(t, sub.Close())
	}
}

// The keys are the prefix and the topic — on a Redis Cluster the prefix and the topic as hash
// tag — and entries are readable with redis-cli: field p is the payload, h:<name> the headers.
func TestEntryLayout(t *testing.T) {
	t.Parallel()
	eachRedis(t, func(t *testing.T, url string) {
		opts := testOptions(url, newPrefix(t, url))
		key := opts.Prefix + "orders"
		if strings.HasPrefix(url, "redis+cluster://") {
			key = opts.Prefix + "{orders}"
		}
		testEntryLayout(t, url, opts, key)
	})
}

func testEntryLayout(t *testing.T, url string, opts Options, key string) {
	b := newBus(t, opts)
	ctx := t.Context()
	ids, err := b.Publish(ctx, "orders", &bus.Message{Payload: []byte("body"), Headers: map[string]string{"event-id": "e1"}})
	require.NoError(t, err)
	got, err := client(t, url).XRange(ctx, key, "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, ids[0], got[0].ID)
	require.Equal(t, map[string]any{"p": "body", "h:event-id": "e1"}, got[0].Values)
}

// Closing a subscription releases what it read but never handed out: another member takes it
// at its next claim, without waiting ClaimAfter.
func TestCloseReleasesUnhanded(t *testing.T) {
	t.Parallel()
	eachRedis(t, testCloseReleasesUnhanded)
}

func testCloseReleasesUnhanded(t *testing.T, url string) {
	b := newBus(t, testOptions(url, newPrefix(t, url)))
	ctx := t.Context()
	for i := range 5 {
		_, err := b.Publish(ctx, "t", &bus.Message{Payload: []byte(fmt.Sprint(i))})
		require.NoError(t, err)
	}
	first, err := b.Subscribe(ctx, "t", "g", bus.SubscribeOptions{Consumer: "first", Prefetch: 5})
	require.NoError(t, err)
	d := recv(t, first, 10*time.Second) // the reader has read all five by now or soon
	require.Eventually(t, func() bool {
		first.(*sub).mu.Lock()
		defer first.(*sub).mu.Unlock()
		return len(first.(*sub).held) == 5
	}, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, first.Close())
	// The handed-out entry becomes claimable after 4s; the released ones at the first claim (2s).
	second, err := b.Subscribe(ctx, "t", "g", bus.SubscribeOptions{Consumer: "second", ClaimAfter: 4 * time.Second})
	require.NoError(t, err)
	start := time.Now()
	got := map[string]bool{}
	for len(got) < 4 {
		x := recv(t, second, 10*time.Second)
		require.NotEqual(t, d.Message().ID, x.Message().ID, "the handed-out entry stays with its (dead) consumer until ClaimAfter")
		require.Equal(t, 1, x.Deliveries(), "a released entry was not delivered before")
		got[x.Message().ID] = true
		require.NoError(t, x.Ack(ctx))
	}
	require.Less(t, time.Since(start), 4*time.Second)
}

// The heartbeat and nack script touches only the entries the consumer still owns: what another
// member claimed stays theirs. Both of its ways to check (one XPENDING over the range, or one
// per id when the range holds many more of the consumer's entries) agree.
func TestTouchOnlyOwnEntries(t *testing.T) {
	t.Parallel()
	eachRedis(t, testTouchOnlyOwnEntries)
}

func testTouchOnlyOwnEntries(t *testing.T, url string) {
	opts := testOptions(url, newPrefix(t, url))
	b := newBus(t, opts)
	c := client(t, url)
	ctx := t.Context()
	key := b.key("t")
	const n = 1100
	pipe := c.Pipeline()
	for i := range n {
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: []any{"p", fmt.Sprint(i)}})
	}
	_, err := pipe.Exec(ctx)
	require.NoError(t, err)
	require.NoError(t, c.XGroupCreate(ctx, key, "g", "0").Err())
	res, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "a", Streams: []string{key, ">"}, Count: n, Block: -1}).Result()
	require.NoError(t, err)
	ids := make([]string, 0, n)
	for _, m := range res[0].Messages {
		ids = append(ids, m.ID)
	}
	// b takes the second entry.
	require.NoError(t, c.XClaimJustID(ctx, &redis.XClaimArgs{Stream: key, Group: "g", Consumer: "b", Messages: []string{ids[1]}}).Err())

	for _, tc := range []struct {
		name      string
		ids, want []string
	}{
		// one XPENDING over ids[0]..ids[2]
		{"range", []string{ids[2], ids[0], ids[1]}, []string{ids[0], ids[2]}},
		// the range ids[0]..ids[n-1] holds 1099 of a's entries: one XPENDING per id
		{"per id", []string{ids[0], ids[1], ids[n-1]}, []string{ids[0], ids[n-1]}},
	} {
		touched, err := b.touch(ctx, key, "g", "a", 7, -1, tc.ids)
		require.NoError(t, err, tc.name)
		require.ElementsMatch(t, tc.want, touched, "%s: b's entry must not be taken back", tc.name)
	}
	pend, err := c.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: key, Group: "g", Start: ids[0], End: ids[2], Count: 3}).Result()
	require.NoError(t, err)
	require.Equal(t, "a", pend[0].Consumer)
	require.Equal(t, int64(7), pend[0].RetryCount, "RETRYCOUNT applied")
	require.Equal(t, "b", pend[1].Consumer)
	require.Equal(t, int64(1), pend[1].RetryCount, "b's entry untouched (its JUSTID claim kept the count)")
}

// Through Sentinel (redis+sentinel://…?master_name=) the bus follows a failover: once the
// replica is promoted and the old master demoted, Publish reaches the new master and the
// subscription, whose blocking connection was on the old one, reads from it. (What the old
// master acknowledged between the promotion and its demotion is lost: replication is
// asynchronous — docs/cluster.md.)
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	master := startServer(t)
	replica := redistest.Replica(t, master)
	sentinel := redistest.Sentinel(t, "trellis", master)
	opts := testOptions(sentinel.SentinelURL("trellis"), "trellis:bus:")
	opts.TrimInterval = -1 // the entries stay, to be counted on the new master
	b := newBus(t, opts)
	ctx := t.Context()
	sub, err := b.Subscribe(ctx, "t", "g", bus.SubscribeOptions{Consumer: "c"})
	require.NoError(t, err)
	_, err = b.Publish(ctx, "t", &bus.Message{Payload: []byte("before")})
	require.NoError(t, err)
	d := recv(t, sub, 10*time.Second)
	require.Equal(t, "before", string(d.Message().Payload))
	require.NoError(t, d.Ack(ctx))
	_, err = b.Lag(ctx, "t") // sends the ack
	require.NoError(t, err)
	require.NoError(t, client(t, master.URL()).(*redis.Client).Wait(ctx, 1, 5*time.Second).Err(), "the replica has it all")

	sc := redis.NewSentinelClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", sentinel.Port)})
	defer sc.Close()
	// The Sentinel must know the replica before it can promote it.
	require.Eventually(t, func() bool {
		r, err := sc.Replicas(ctx, "trellis").Result()
		return err == nil && len(r) == 1
	}, 20*time.Second, 50*time.Millisecond, "the Sentinel found the replica")
	// Until the Sentinel's INFO of the replica is fresh it answers NOGOODSLAVE: ask again.
	require.Eventually(t, func() bool {
		return sc.Failover(ctx, "trellis").Err() == nil
	}, 30*time.Second, 200*time.Millisecond, "the Sentinel starts the failover")
	want := fmt.Sprint(replica.Port)
	require.Eventually(t, func() bool {
		addr, err := sc.GetMasterAddrByName(ctx, "trellis").Result()
		return err == nil && len(addr) == 2 && addr[1] == want
	}, 30*time.Second, 50*time.Millisecond, "the replica was promoted")
	old := client(t, master.URL())
	require.Eventually(t, func() bool {
		info, err := old.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "role:slave")
	}, 30*time.Second, 50*time.Millisecond, "the old master was demoted")

	require.Eventually(t, func() bool {
		_, err := b.Publish(ctx, "t", &bus.Message{Payload: []byte("after")})
		return err == nil
	}, 20*time.Second, 50*time.Millisecond, "Publish reaches the new master")
	d = recv(t, sub, 20*time.Second)
	require.Equal(t, "after", string(d.Message().Payload))
	require.NoError(t, d.Ack(ctx))
	entries, err := client(t, replica.URL()).XRange(ctx, "trellis:bus:t", "-", "+").Result()
	require.NoError(t, err)
	var got []string
	for _, e := range entries {
		got = append(got, e.Values["p"].(string))
	}
	require.Equal(t, []string{"before", "after"}, got, "the new master holds both entries")
	require.Eventually(t, func() bool {
		lags, err := b.Lag(ctx, "t")
		return err == nil && len(lags) == 1 && lags[0].Pending == 0
	}, 10*time.Second, 50*time.Millisecond, "the ack reached the new master")
}
