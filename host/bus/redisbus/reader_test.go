package redisbus

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/host/redisconn"
)

// readerOf is the reader s is in now (it moves between cold and hot ones).
func readerOf(s *sub) *reader {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r
}

// inBlockingRead says whether s waits in its reader's blocking read.
func inBlockingRead(s *sub) bool {
	for {
		r := readerOf(s)
		r.mu.Lock()
		// s may have moved to another reader (hot or cold) since: inBlock is guarded by the
		// mutex of the reader that holds s now.
		if readerOf(s) != r {
			r.mu.Unlock()
			continue
		}
		in := s.inBlock
		r.mu.Unlock()
		return in
	}
}

// namedOptions are testOptions whose connections carry a client name no other bus uses, so
// CLIENT LIST tells this bus's connections apart.
func namedOptions(t *testing.T, url string) (Options, string) {
	t.Helper()
	opts := testOptions(url, newPrefix(t, url))
	conn, err := redisconn.ParseURL(url)
	require.NoError(t, err)
	name := fmt.Sprintf("redisbus-test-%s-%d", runID, prefixes.Add(1))
	conn = conn.Tune(func(c *redisconn.Common) { c.ClientName = name })
	opts.Conn = &conn
	return opts, name
}

// blockedReads counts the connections named name that wait in a blocking XREADGROUP.
func blockedReads(t *testing.T, url, name string) int {
	t.Helper()
	list, err := client(t, url).ClientList(context.Background()).Result()
	require.NoError(t, err)
	n := 0
	for _, line := range strings.Split(list, "\n") {
		f := map[string]string{}
		for _, kv := range strings.Fields(line) {
			k, v, _ := strings.Cut(kv, "=")
			f[k] = v
		}
		if f["name"] == name && f["cmd"] == "xreadgroup" && strings.Contains(f["flags"], "b") {
			n++
		}
	}
	return n
}

// Subscriptions of one group and consumer are read together: 40 of them in group "pool" and 5
// in group "pump", with ReadStreams 16, wait in 3 + 1 blocking reads, not 45. The 8 whose
// streams bring entries move to one hot reader (HotStreams 16), each still getting its own
// messages; after HotFor without entries they are back in the cold readers. A reader whose
// subscriptions all closed lets its connection go.
func TestReadersShareConnections(t *testing.T) {
	t.Parallel()
	url := redisURL(t)
	opts, name := namedOptions(t, url)
	opts.ReadStreams, opts.HotFor = 16, 300*time.Millisecond
	b := newBus(t, opts)
	ctx := t.Context()
	const pool, pump, active = 40, 5, 8
	var subs []bus.Subscription
	for i := range pool + pump {
		group := "pool"
		if i >= pool {
			group = "pump"
		}
		s, err := b.Subscribe(ctx, fmt.Sprintf("t%d", i), group, bus.SubscribeOptions{Consumer: "host-1"})
		require.NoError(t, err)
		subs = append(subs, s)
	}
	blocked := func(n int, what string) {
		t.Helper()
		require.Eventually(t, func() bool { return blockedReads(t, url, name) == n }, 10*time.Second, 10*time.Millisecond, what)
		for range 10 {
			require.LessOrEqual(t, blockedReads(t, url, name), n, "%s: never more than one blocking read per reader", what)
			time.Sleep(5 * time.Millisecond)
		}
	}
	blocked(4, "3 readers of pool (40 streams, 16 a read) and 1 of pump wait in XREADGROUP")

	for i := range active {
		_, err := b.Publish(ctx, fmt.Sprintf("t%d", i), &bus.Message{Payload: []byte(fmt.Sprint(i))})
		require.NoError(t, err)
	}
	for i, s := range subs[:active] {
		d := recv(t, s, 10*time.Second)
		require.Equal(t, fmt.Sprint(i), string(d.Message().Payload), "subscription %d gets its own topic's message", i)
		require.NoError(t, d.Ack(ctx))
	}
	hot := func(s bus.Subscription) bool { return readerOf(s.(*sub)).key.hot }
	require.Eventually(t, func() bool {
		for _, s := range subs[:active] {
			if !hot(s) {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond, "the active streams are read by a hot reader")
	require.Same(t, readerOf(subs[0].(*sub)), readerOf(subs[active-1].(*sub)), "one hot reader for the 8")
	for _, s := range subs[active:] {
		require.False(t, hot(s), "a quiet stream stays cold")
	}
	blocked(5, "the 4 cold readers and 1 hot one")
	// Another message to an active stream comes through the hot reader.
	_, err := b.Publish(ctx, "t0", &bus.Message{Payload: []byte("again")})
	require.NoError(t, err)
	require.Equal(t, "again", string(recv(t, subs[0], 10*time.Second).Message().Payload))

	require.Eventually(t, func() bool {
		for _, s := range subs[:active] {
			if hot(s) {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond, "quiet for HotFor, the streams are back in the cold readers")
	blocked(4, "the hot reader ended with its last subscription")
	for _, s := range subs[pool:] {
		require.NoError(t, s.Close())
	}
	blocked(3, "the pump reader ended with its last subscription")
	b.rmu.Lock()
	_, pumpReaders := b.readerSets[readerKey{group: "pump", consumer: "host-1", slot: -1}]
	b.rmu.Unlock()
	require.False(t, pumpReaders)
}

// In a shared reader each subscription keeps its own Prefetch, and the wake-ups that do not
// wait for a blocking read to time out work (Block is a minute here, so a test that waited
// for one would fail): an ack gives credit back and the next message comes; a drained stream
// joins the blocking read in flight (CLIENT UNBLOCK) and a message published afterwards comes;
// Close ends one subscription's part at once while the others go on.
func TestSharedReaderCreditsAndWakeups(t *testing.T) {
	t.Parallel()
	eachRedis(t, testSharedReaderCreditsAndWakeups)
}

func testSharedReaderCreditsAndWakeups(t *testing.T, url string) {
	opts := testOptions(url, newPrefix(t, url))
	opts.Block = time.Minute
	b := newBus(t, opts)
	ctx := t.Context()
	const wait, quiet = 20 * time.Second, 150 * time.Millisecond
	noneWithin := func(s bus.Subscription, what string) {
		t.Helper()
		select {
		case d, ok := <-s.Deliveries():
			if ok {
				t.Fatalf("%s: unexpected delivery of %q", what, d.Message().Payload)
			}
		case <-time.After(quiet):
		}
	}
	subscribe := func(topic string, prefetch int) bus.Subscription {
		s, err := b.Subscribe(ctx, topic, "g", bus.SubscribeOptions{Consumer: "c", Prefetch: prefetch})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	publish := func(topic string, from, to int) {
		for i := from; i < to; i++ {
			_, err := b.Publish(ctx, topic, &bus.Message{Payload: []byte(fmt.Sprintf("%s%d", topic, i))})
			require.NoError(t, err)
		}
	}
	one, three, idle := subscribe("a", 1), subscribe("b", 3), subscribe("c", 10)
	publish("a", 0, 5)
	publish("b", 0, 5)

	held := recv(t, one, wait)
	require.Equal(t, "a0", string(held.Message().Payload))
	noneWithin(one, "Prefetch 1 with one unacked")
	var heldB []bus.Delivery
	for range 3 {
		heldB = append(heldB, recv(t, three, wait))
	}
	noneWithin(three, "Prefetch 3 with three unacked")

	// Another subscription of the reader, idle so far, hears a new message at once.
	publish("c", 0, 1)
	require.Equal(t, "c0", string(recv(t, idle, wait).Message().Payload))

	// Credit back: the next message of a subscription that was out of it.
	require.NoError(t, held.Ack(ctx))
	held = recv(t, one, wait)
	require.Equal(t, "a1", string(held.Message().Payload), "an ack wakes the reader")
	require.NoError(t, heldB[0].Ack(ctx))
	require.Equal(t, "b3", string(recv(t, three, wait).Message().Payload))

	// Drain a: its stream joins the blocking read in flight (on c's stream: b is out of
	// credit); a message published then comes long before that read would time out.
	for i := 1; i < 5; i++ {
		if i > 1 {
			held = recv(t, one, wait)
		}
		require.Equal(t, fmt.Sprintf("a%d", i), string(held.Message().Payload))
		require.NoError(t, held.Ack(ctx))
	}
	s := one.(*sub)
	require.Eventually(t, func() bool { return inBlockingRead(s) }, wait, time.Millisecond, "the drained stream joins the blocking read")
	publish("a", 5, 6)
	held = recv(t, one, wait)
	require.Equal(t, "a5", string(held.Message().Payload))
	require.NoError(t, held.Ack(ctx))

	// Close of a subscription in the blocking read returns at once and ends its deliveries;
	// the others go on.
	closed := make(chan struct{})
	go func() {
		_ = idle.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(wait):
		t.Fatal("Close waited for the blocking read to time out")
	}
	_, ok := <-idle.Deliveries()
	require.False(t, ok)
	publish("a", 6, 7)
	require.Equal(t, "a6", string(recv(t, one, wait).Message().Payload))
	for _, d := range heldB[1:] {
		require.NoError(t, d.Ack(ctx))
	}
	require.Equal(t, "b4", string(recv(t, three, wait).Message().Payload))
}

// keySlot agrees with the cluster's CLUSTER KEYSLOT, hash tags included.
func TestKeySlot(t *testing.T) {
	t.Parallel()
	c := client(t, clusterURL(t))
	ctx := t.Context()
	keys := []string{"", "a", "{}", "{}x", "a{}b", "{a}", "x{a}y", "{a}{b}", "{{a}}", "a{b", "a}b{c}", "trellis:app:{listener:events.E1}"}
	for i := range 200 {
		keys = append(keys, fmt.Sprintf("trellis:bus:{listener:events.L%d}", i), fmt.Sprintf("k%d", i))
	}
	for _, k := range keys {
		want, err := c.ClusterKeySlot(ctx, k).Result()
		require.NoError(t, err)
		require.Equal(t, int(want), keySlot(k), "slot of %q", k)
	}
}

// On a Redis Cluster a read may name keys of one slot only (CROSSSLOT, even on one master): two
// topics whose keys share a slot share a reader and both get their messages from its reads; a
// topic of another slot has a reader of its own.
func TestClusterReadersBySlot(t *testing.T) {
	t.Parallel()
	url := clusterURL(t)
	b := newBus(t, testOptions(url, newPrefix(t, url)))
	ctx := t.Context()
	bySlot := map[int]string{}
	var same [2]string
	for i := 0; same[0] == ""; i++ {
		topic := fmt.Sprintf("t%d", i)
		slot := keySlot(b.key(topic))
		if other, ok := bySlot[slot]; ok {
			same = [2]string{other, topic}
		}
		bySlot[slot] = topic
	}
	other := "lone"
	require.NotEqual(t, keySlot(b.key(same[0])), keySlot(b.key(other)))
	var subs []bus.Subscription
	for _, topic := range []string{same[0], same[1], other} {
		s, err := b.Subscribe(ctx, topic, "g", bus.SubscribeOptions{Consumer: "c"})
		require.NoError(t, err)
		subs = append(subs, s)
	}
	require.Same(t, readerOf(subs[0].(*sub)), readerOf(subs[1].(*sub)), "topics of one slot share a reader")
	require.NotSame(t, readerOf(subs[0].(*sub)), readerOf(subs[2].(*sub)), "a topic of another slot does not")
	// Both streams of the shared reader are in its blocking read once their history is read.
	require.Eventually(t, func() bool {
		return inBlockingRead(subs[0].(*sub)) && inBlockingRead(subs[1].(*sub))
	}, 10*time.Second, time.Millisecond)
	for i, topic := range []string{same[0], same[1], other} {
		_, err := b.Publish(ctx, topic, &bus.Message{Payload: []byte(topic)})
		require.NoError(t, err)
		d := recv(t, subs[i], 10*time.Second)
		require.Equal(t, topic, string(d.Message().Payload))
		require.NoError(t, d.Ack(ctx))
	}
}

// An idle bus reads once per Block per reader, not once per subscription, and trims nothing
// it did not touch: 100 idle subscriptions of one group and consumer cost a handful of reads
// over two seconds (one reader each: 400).
func TestIdleReadsDoNotGrowWithSubscriptions(t *testing.T) {
	t.Parallel()
	url := redisURL(t)
	opts := testOptions(url, newPrefix(t, url))
	b := newBus(t, opts)
	ctx := t.Context()
	var subs []*sub
	for i := range 100 {
		s, err := b.Subscribe(ctx, fmt.Sprintf("t%d", i), "g", bus.SubscribeOptions{Consumer: "c"})
		require.NoError(t, err)
		subs = append(subs, s.(*sub))
	}
	require.Eventually(t, func() bool {
		for _, s := range subs {
			s.mu.Lock()
			shared := s.mode == modeShared
			s.mu.Unlock()
			if !shared {
				return false
			}
		}
		return true
	}, 10*time.Second, time.Millisecond, "every subscription waits in the blocking read")
	time.Sleep(3 * opts.TrimInterval) // the first trim of the subscribed topics
	before := b.counter.snapshot()
	const window = 2 * time.Second
	time.Sleep(window)
	after := b.counter.snapshot()
	for k, v := range before {
		after[k] -= v
	}
	t.Logf("commands of 100 idle subscriptions over %s: %v", window, after)
	require.LessOrEqual(t, after["xreadgroup"], int64(window/opts.Block)+2, "one blocking read per Block: %v", after)
	require.Zero(t, after["xinfo"], "nothing touched, nothing to trim: %v", after)
}

// A group gone from under a shared read (destroyed by hand, or by another host) fails the read
// with NOGROUP for every stream in it, and a stream deleted from under it ends it with
// UNBLOCKED: the reader recreates the group, and the other subscriptions go on.
func TestLostGroupInSharedRead(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		lose func(ctx context.Context, c redis.UniversalClient, key string) error
	}{
		{"group destroyed", func(ctx context.Context, c redis.UniversalClient, key string) error {
			return c.XGroupDestroy(ctx, key, "g").Err()
		}},
		{"stream deleted", func(ctx context.Context, c redis.UniversalClient, key string) error {
			return c.Del(ctx, key).Err()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := redisURL(t)
			b := newBus(t, testOptions(url, newPrefix(t, url)))
			c := client(t, url)
			ctx := t.Context()
			lost, err := b.Subscribe(ctx, "lost", "g", bus.SubscribeOptions{Consumer: "c"})
			require.NoError(t, err)
			kept, err := b.Subscribe(ctx, "kept", "g", bus.SubscribeOptions{Consumer: "c"})
			require.NoError(t, err)
			require.Same(t, readerOf(lost.(*sub)), readerOf(kept.(*sub)))
			require.Eventually(t, func() bool {
				return inBlockingRead(lost.(*sub)) && inBlockingRead(kept.(*sub))
			}, 10*time.Second, time.Millisecond, "both wait in the blocking read")
			require.NoError(t, tc.lose(ctx, c, b.key("lost")))
			_, err = b.Publish(ctx, "kept", &bus.Message{Payload: []byte("kept")})
			require.NoError(t, err)
			require.Equal(t, "kept", string(recv(t, kept, 10*time.Second).Message().Payload))
			require.Eventually(t, func() bool {
				groups, err := c.XInfoGroups(ctx, b.key("lost")).Result()
				return err == nil && len(groups) == 1
			}, 10*time.Second, 10*time.Millisecond, "the group is recreated")
			_, err = b.Publish(ctx, "lost", &bus.Message{Payload: []byte("after")})
			require.NoError(t, err)
			require.Equal(t, "after", string(recv(t, lost, 10*time.Second).Message().Payload))
		})
	}
}

// noGroupKey reads the stream out of Redis's own NOGROUP error.
func TestNoGroupKey(t *testing.T) {
	t.Parallel()
	url := redisURL(t)
	c := client(t, url)
	key := newPrefix(t, url) + "x:{y} 'z'"
	require.NoError(t, c.XAdd(t.Context(), &redis.XAddArgs{Stream: key, Values: []any{"p", "1"}}).Err())
	_, err := c.XReadGroup(t.Context(), &redis.XReadGroupArgs{Group: "none", Consumer: "c", Streams: []string{key, ">"}, Block: -1}).Result()
	require.True(t, isNoGroup(err), "%v", err)
	require.Equal(t, key, noGroupKey(err))
	require.Empty(t, noGroupKey(fmt.Errorf("NOGROUP something else")))
}
