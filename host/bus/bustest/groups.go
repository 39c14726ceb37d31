package bustest

import (
	"fmt"
	"sync"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/bus"
)

// Every group of a topic gets every message, whatever the other groups do with it.
func testGroupsEachGetEverything(e *env) {
	topic := e.topic("t")
	a := e.subscribe(e.b, topic, "a", bus.SubscribeOptions{Consumer: "c"})
	b := e.subscribe(e.b, topic, "b", bus.SubscribeOptions{Consumer: "c"})
	ids := e.publishN(e.b, topic, 0, 10)
	for i, id := range ids {
		da := e.recv(a, fmt.Sprintf("group a, message %d", i))
		require.Equal(e.t, id, da.Message().ID)
		e.ack(da)
	}
	// Group b nacks the first message it gets: group a is not affected.
	first := e.recv(b, "group b, first message")
	require.Equal(e.t, ids[0], first.Message().ID)
	require.NoError(e.t, first.Nack(e.ctx))
	seen := map[string]int{}
	for len(seen) < len(ids) {
		d := e.recv(b, "group b")
		seen[d.Message().ID]++
		e.ack(d)
	}
	for _, id := range ids {
		require.Equal(e.t, 1, seen[id], "group b gets %s once after the nack", id)
	}
	e.quiet(a, "group a after group b's nack")
	e.waitLag(e.b, topic, "a", 0, 0)
	e.waitLag(e.b, topic, "b", 0, 0)
}

// Members of a group share its messages: with Prefetch 1 and no ack, three members holding one
// message each must have three different messages; afterwards they share the rest, each
// message going to one member. With a Peer hook one member runs on another bus of the broker,
// as on another host.
func testGroupMembersShare(e *env) {
	topic := e.topic("t")
	buses := []bus.Bus{e.b, e.b, e.b}
	if e.opts.Peer != nil {
		buses[1] = e.opts.Peer(e.t, e.b)
		e.t.Cleanup(func() { _ = buses[1].Close() })
	}
	subs := make([]bus.Subscription, len(buses))
	for i, b := range buses {
		subs[i] = e.subscribe(b, topic, "g", bus.SubscribeOptions{Consumer: fmt.Sprintf("m%d", i), Prefetch: 1})
	}
	e.publishN(e.b, topic, 0, len(subs))
	held := make([]bus.Delivery, len(subs))
	got := map[string]int{}
	for i, s := range subs {
		held[i] = e.recv(s, fmt.Sprintf("member %d", i))
		got[string(held[i].Message().Payload)]++
	}
	for i := range subs {
		require.Equal(e.t, 1, got[fmt.Sprintf("m%d", i)], "each member holds a different message: %v", got)
		e.quiet(subs[i], fmt.Sprintf("member %d holds an unacked message with Prefetch 1", i))
	}
	for _, d := range held {
		e.ack(d)
	}

	const more = 60
	c := newCollector()
	var wg sync.WaitGroup
	for i, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.drain(e.ctx, e.t, fmt.Sprintf("m%d", i), s)
		}()
	}
	e.publishN(e.b, topic, len(subs), len(subs)+more)
	c.waitDistinct(e.t, more, e.opts.Timeout, "shared messages")
	e.waitLag(e.b, topic, "g", 0, 0)
	for _, s := range subs {
		require.NoError(e.t, s.Close())
	}
	wg.Wait()
	counts, _, total := c.snapshot()
	require.Equal(e.t, more, total, "each message to one member of the group")
	for i := len(subs); i < len(subs)+more; i++ {
		require.Equal(e.t, 1, counts[fmt.Sprintf("m%d", i)], "message %d", i)
	}
}

// A new reliable group (StartOldest) gets the messages published before it existed.
func testOldMessagesReachNewGroup(e *env) {
	topic := e.topic("t")
	// A group that has not acknowledged the messages keeps them on the topic. Without it, the
	// messages would be gone at the backend's next trim once "early" acked them (the contract
	// trims what every group acknowledged), and whether "late" saw them would depend on a race
	// with the trimmer (AutoTrim backends trim every 100ms or so).
	require.NoError(e.t, e.subscribe(e.b, topic, "keeper", bus.SubscribeOptions{Consumer: "k"}).Close())
	ids := e.publishN(e.b, topic, 0, 5)
	// Another group consumed and acked them already: they are still there for a new group.
	early := e.subscribe(e.b, topic, "early", bus.SubscribeOptions{Consumer: "c"})
	for range ids {
		e.ack(e.recv(early, "early group"))
	}
	e.waitLag(e.b, topic, "early", 0, 0)
	late := e.subscribe(e.b, topic, "late", bus.SubscribeOptions{Consumer: "c", Start: bus.StartOldest})
	for i, id := range ids {
		d := e.recv(late, fmt.Sprintf("old message %d", i))
		require.Equal(e.t, id, d.Message().ID)
		e.ack(d)
	}
}

// A StartNewest group gets only what was published after it was created.
func testStartNewest(e *env) {
	topic := e.topic("t")
	e.publishN(e.b, topic, 0, 3)
	sub := e.subscribe(e.b, topic, "g", bus.SubscribeOptions{Consumer: "c", Start: bus.StartNewest})
	ids := e.publishN(e.b, topic, 3, 5)
	for i, id := range ids {
		d := e.recv(sub, fmt.Sprintf("new message %d", i))
		require.Equal(e.t, id, d.Message().ID, "StartNewest skips the messages from before the group")
		e.ack(d)
	}
	e.quiet(sub, "after the new messages")
}

// Reliable delivery: a group keeps the messages that arrive while none of its members runs,
// whatever its start position.
func testGroupKeepsWhileNoConsumer(e *env) {
	topic := e.topic("t")
	sub := e.subscribe(e.b, topic, "g", bus.SubscribeOptions{Consumer: "c1", Start: bus.StartNewest})
	require.NoError(e.t, sub.Close())
	ids := e.publishN(e.b, topic, 0, 4)
	e.waitLag(e.b, topic, "g", 0, 4)
	sub = e.subscribe(e.b, topic, "g", bus.SubscribeOptions{Consumer: "c2", Start: bus.StartNewest})
	for i, id := range ids {
		d := e.recv(sub, fmt.Sprintf("kept message %d", i))
		require.Equal(e.t, id, d.Message().ID)
		e.ack(d)
	}
}

// SkipBacklog drops what arrived while no member ran (non-reliable delivery) for that group
// only, and reports what it dropped: on resubscribing, and on creating the group over messages
// already on the topic. A member joining a live one skips nothing.
func testSkipBacklog(e *env) {
	topic := e.topic("t")
	var mu sync.Mutex
	var skipped []string
	opts := bus.SubscribeOptions{Consumer: "c1", Start: bus.StartNewest, SkipBacklog: true, Skipped: func(msgs []*bus.Message) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			skipped = append(skipped, string(m.Payload))
		}
	}}
	taken := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := skipped
		skipped = nil
		return out
	}
	early := e.publishN(e.b, topic, 0, 2)
	sub := e.subscribe(e.b, topic, "g", opts)
	require.Equal(e.t, []string{"m0", "m1"}, taken(), "a new group skips and reports what was on the topic before it")
	other := e.subscribe(e.b, topic, "other", bus.SubscribeOptions{Consumer: "c1", Start: bus.StartNewest})
	require.NoError(e.t, sub.Close())
	e.publishN(e.b, topic, 2, 5)
	sub = e.subscribe(e.b, topic, "g", opts)
	require.Equal(e.t, []string{"m2", "m3", "m4"}, taken(), "the messages skipped, oldest first")
	id := e.publishN(e.b, topic, 5, 6)[0]
	d := e.recv(sub, "the message published after resubscribing")
	require.Equal(e.t, id, d.Message().ID, "SkipBacklog skipped what arrived while no member ran")
	e.ack(d)
	e.quiet(sub, "after the new message")
	for i := 2; i < 6; i++ {
		d := e.recv(other, fmt.Sprintf("group without SkipBacklog, message %d", i))
		require.Equal(e.t, fmt.Sprintf("m%d", i), string(d.Message().Payload))
		e.ack(d)
	}
	require.Len(e.t, early, 2)

	// A member joining a live one, which holds one message and has not read the next: nothing
	// is skipped, and the newcomer takes what the live member has not read.
	require.NoError(e.t, sub.Close())
	live := e.subscribe(e.b, topic, "g", bus.SubscribeOptions{Consumer: "c1", Start: bus.StartNewest, Prefetch: 1})
	e.publishN(e.b, topic, 6, 8)
	held := e.recv(live, "the live member's message")
	require.Equal(e.t, "m6", string(held.Message().Payload))
	joiner := opts
	joiner.Consumer = "c2"
	late := e.subscribe(e.b, topic, "g", joiner)
	require.Empty(e.t, taken(), "nothing skipped while a member is live")
	d = e.recv(late, "the message the live member had not read")
	require.Equal(e.t, "m7", string(d.Message().Payload))
	e.ack(d)
	e.ack(held)
}

// Lag counts, per group, pending (delivered, not acked) and undelivered messages.
func testLag(e *env) {
	topic := e.topic("t")
	lags, err := e.b.Lag(e.ctx, e.topic("unknown"))
	require.NoError(e.t, err, "lag of a topic nobody used")
	require.Empty(e.t, lags)

	e.publishN(e.b, topic, 0, 10)
	sub := e.subscribe(e.b, topic, "g", bus.SubscribeOptions{Consumer: "c", Prefetch: 1})
	d := e.recv(sub, "first message")
	l := e.lagOf(e.b, topic, "g")
	require.Equal(e.t, int64(1), l.Pending, "one delivered, not acked")
	require.Equal(e.t, int64(9), l.Undelivered)
	require.GreaterOrEqual(e.t, l.Consumers, 1, "a member is subscribed")

	newest := e.subscribe(e.b, topic, "newest", bus.SubscribeOptions{Consumer: "c", Start: bus.StartNewest})
	require.NoError(e.t, newest.Close())
	e.publishN(e.b, topic, 10, 15)
	lags, err = e.b.Lag(e.ctx, topic)
	require.NoError(e.t, err)
	require.Len(e.t, lags, 2, "one entry per group: %+v", lags)
	byGroup := map[string]bus.GroupLag{}
	for _, l := range lags {
		byGroup[l.Group] = l
	}
	require.Equal(e.t, int64(1), byGroup["g"].Pending)
	require.Equal(e.t, int64(14), byGroup["g"].Undelivered)
	require.Equal(e.t, int64(0), byGroup["newest"].Pending)
	require.Equal(e.t, int64(5), byGroup["newest"].Undelivered)

	require.NoError(e.t, sub.Close())
	e.ack(d)
	e.waitLag(e.b, topic, "g", 0, 14)
}

// DeleteGroup removes a group: its subscriptions on this bus end, Lag no longer lists it, and a
// group of the same name made later starts afresh. Deleting what does not exist is no error.
func testDeleteGroup(e *env) {
	topic := e.topic("t")
	e.publishN(e.b, topic, 0, 3)
	sub := e.subscribe(e.b, topic, "g", bus.SubscribeOptions{Consumer: "c"})
	keep := e.subscribe(e.b, topic, "keep", bus.SubscribeOptions{Consumer: "c"})
	e.recv(sub, "a message before the group is deleted")
	require.NoError(e.t, e.b.DeleteGroup(e.ctx, topic, "g"))
	for range sub.Deliveries() { //nolint:revive // drain until the bus ends the subscription
	}
	lags, err := e.b.Lag(e.ctx, topic)
	require.NoError(e.t, err)
	for _, l := range lags {
		require.NotEqual(e.t, "g", l.Group, "a deleted group is not listed")
	}
	require.NoError(e.t, e.b.DeleteGroup(e.ctx, topic, "g"), "deleting a deleted group")
	require.NoError(e.t, e.b.DeleteGroup(e.ctx, e.topic("unknown"), "g"), "deleting a group of an unknown topic")

	again := e.subscribe(e.b, topic, "g", bus.SubscribeOptions{Consumer: "c", Start: bus.StartNewest})
	id := e.publishN(e.b, topic, 3, 4)[0]
	d := e.recv(again, "the recreated group")
	require.Equal(e.t, id, d.Message().ID, "a recreated StartNewest group starts afresh")
	e.ack(d)
	for i := range 4 {
		d := e.recv(keep, fmt.Sprintf("the other group, message %d", i))
		require.Equal(e.t, fmt.Sprintf("m%d", i), string(d.Message().Payload))
		e.ack(d)
	}
}

// The backend trims what every group acknowledged and never a pending or undelivered message; a
// topic without groups is left alone.
func testTrim(e *env) {
	in, ok := e.b.(Inspector)
	if !ok {
		e.t.Skip("the backend does not implement bustest.Inspector")
	}
	topic, lone := e.topic("t"), e.topic("lone")
	e.publishN(e.b, lone, 0, 4)
	ids := e.publishN(e.b, topic, 0, 10)
	n, err := in.Len(e.ctx, topic)
	require.NoError(e.t, err)
	require.Equal(e.t, int64(10), n)

	// Both groups exist before either consumes: a backend trimming on its own must not take
	// what group part has not seen yet.
	part := e.subscribe(e.b, topic, "part", bus.SubscribeOptions{Consumer: "c1", Prefetch: 1})
	all := e.subscribe(e.b, topic, "all", bus.SubscribeOptions{Consumer: "c"})
	for range ids {
		e.ack(e.recv(all, "group all"))
	}
	for i := range 4 {
		e.ack(e.recv(part, fmt.Sprintf("group part, message %d", i)))
	}
	e.recv(part, "group part, message 4 (left pending)")
	require.NoError(e.t, part.Close())
	e.waitLag(e.b, topic, "all", 0, 0)
	e.waitLag(e.b, topic, "part", 1, 5)

	check := func(what string) {
		n, err := in.Len(e.ctx, topic)
		require.NoError(e.t, err)
		require.Equal(e.t, int64(6), n, "%s: message 4 is pending and 5-9 undelivered for group part", what)
	}
	if e.opts.AutoTrim {
		require.Eventually(e.t, func() bool {
			n, err := in.Len(e.ctx, topic)
			return err == nil && n == 6
		}, e.opts.Timeout, 10*time.Millisecond, "the backend trims on its own")
	}
	_, err = in.Trim(e.ctx, topic)
	require.NoError(e.t, err)
	check("after Trim")
	_, err = in.Trim(e.ctx, lone)
	require.NoError(e.t, err)
	n, err = in.Len(e.ctx, lone)
	require.NoError(e.t, err)
	require.Equal(e.t, int64(4), n, "a topic without groups keeps its messages for the group to come")
	n, err = in.Len(e.ctx, e.topic("unknown"))
	require.NoError(e.t, err)
	require.Zero(e.t, n)

	// A new StartOldest group sees what is left, and what was kept still reaches group part.
	fresh := e.subscribe(e.b, topic, "fresh", bus.SubscribeOptions{Consumer: "c"})
	d := e.recv(fresh, "a new group after the trim")
	require.Equal(e.t, ids[4], d.Message().ID, "the oldest message left is the first still pending")
	e.ack(d)
	part = e.subscribe(e.b, topic, "part", bus.SubscribeOptions{Consumer: "c2", ClaimAfter: e.opts.ClaimAfter})
	got := map[string]bool{}
	for len(got) < 6 {
		d := e.recv(part, "group part after the trim")
		got[d.Message().ID] = true
		e.ack(d)
	}
	for _, id := range ids[4:] {
		require.True(e.t, got[id], "message %s survived the trim", id)
	}
}
