package bustest

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/bus"
)

// A consumer that closed with a delivery unsettled is dead: another member claims the message
// once it was unacknowledged for ClaimAfter, not before.
func testClaimAfterClose(e *env) {
	topic := e.topic("t")
	id := e.publishN(e.b, topic, 0, 1)[0]
	dead := e.subscribe(e.b, topic, "g", bus.SubscribeOptions{Consumer: "dead", ClaimAfter: -1})
	d := e.recv(dead, "the dead consumer's message")
	received := time.Now()
	require.NoError(e.t, dead.Close())

	alive := e.subscribe(e.b, topic, "g", bus.SubscribeOptions{Consumer: "alive", ClaimAfter: e.opts.ClaimAfter})
	c := e.recv(alive, "the claimed message")
	waited := time.Since(received)
	require.Equal(e.t, id, c.Message().ID)
	require.Equal(e.t, d.Message().Payload, c.Message().Payload)
	require.Equal(e.t, 2, c.Deliveries(), "the claim is the second delivery")
	// Brokers measure idle time from their own clock, a little before the delivery reached us.
	require.GreaterOrEqual(e.t, waited, e.opts.ClaimAfter-100*time.Millisecond, "claimed before ClaimAfter")
	e.ack(c)
	e.waitLag(e.b, topic, "g", 0, 0)
}

// A consumer whose process crashed (kill -9: no ack flushed, nothing released) loses nothing: a
// member on the surviving (or reopened) bus gets both its pending and its undelivered messages.
func testClaimAfterCrash(e *env) {
	if e.opts.Crash == nil {
		e.t.Skip("no Crash hook for this backend")
	}
	topic := e.topic("t")
	ids := e.publishN(e.b, topic, 0, 3)
	dead := e.subscribe(e.b, topic, "g", bus.SubscribeOptions{Consumer: "dead", Prefetch: 1})
	d := e.recv(dead, "the crashing consumer's message")
	require.Equal(e.t, ids[0], d.Message().ID)
	b2 := e.opts.Crash(e.t, e.b)
	require.NotNil(e.t, b2, "Crash returned no bus")
	alive := e.subscribe(b2, topic, "g", bus.SubscribeOptions{Consumer: "alive", ClaimAfter: e.opts.ClaimAfter})
	got := map[string]int{}
	for len(got) < len(ids) {
		c := e.recv(alive, "after the crash")
		got[c.Message().ID]++
		e.ack(c)
	}
	for _, id := range ids {
		require.Equal(e.t, 1, got[id], "message %s after the crash", id)
	}
	e.waitLag(b2, topic, "g", 0, 0)
}

// A negative ClaimAfter keeps that consumer from claiming; a member with claiming on takes the
// message.
func testClaimDisabled(e *env) {
	topic := e.topic("t")
	id := e.publishN(e.b, topic, 0, 1)[0]
	dead := e.subscribe(e.b, topic, "g", bus.SubscribeOptions{Consumer: "dead", ClaimAfter: -1})
	e.recv(dead, "the dead consumer's message")
	require.NoError(e.t, dead.Close())
	never := e.subscribe(e.b, topic, "g", bus.SubscribeOptions{Consumer: "never", ClaimAfter: -1})
	claims := e.subscribe(e.b, topic, "g", bus.SubscribeOptions{Consumer: "claims", ClaimAfter: e.opts.ClaimAfter})
	c := e.recv(claims, "the claimed message")
	require.Equal(e.t, id, c.Message().ID)
	e.ack(c)
	e.quiet(never, "a consumer that does not claim")
}

// A consumer subscribing again under its old name (a host restarting with its id) gets the
// messages it left pending at once, without claiming (its ClaimAfter is negative here).
func testSameConsumerResumes(e *env) {
	topic := e.topic("t")
	ids := e.publishN(e.b, topic, 0, 2)
	sub := e.subscribe(e.b, topic, "g", bus.SubscribeOptions{Consumer: "host-1", Prefetch: 1, ClaimAfter: -1})
	e.recv(sub, "first life")
	require.NoError(e.t, sub.Close())
	sub = e.subscribe(e.b, topic, "g", bus.SubscribeOptions{Consumer: "host-1", Prefetch: 1, ClaimAfter: -1})
	d := e.recv(sub, "second life")
	require.Equal(e.t, ids[0], d.Message().ID, "the pending message comes back first")
	require.Equal(e.t, 2, d.Deliveries())
	e.ack(d)
	d = e.recv(sub, "second life, next message")
	require.Equal(e.t, ids[1], d.Message().ID)
	require.Equal(e.t, 1, d.Deliveries())
	e.ack(d)
	e.waitLag(e.b, topic, "g", 0, 0)
}

// A consumer that is alive but slower than ClaimAfter keeps its message: no other member gets
// it while the delivery is unsettled (the backend keeps the consumer's claim fresh).
func testAliveSlowConsumer(e *env) {
	topic := e.topic("t")
	claimAfter := 2 * e.opts.ClaimAfter
	buses := []bus.Bus{e.b, e.b}
	if e.opts.Peer != nil {
		buses[1] = e.opts.Peer(e.t, e.b)
		e.t.Cleanup(func() { _ = buses[1].Close() })
	}
	id := e.publishN(e.b, topic, 0, 1)[0]
	slow := e.subscribe(buses[0], topic, "g", bus.SubscribeOptions{Consumer: "slow", Prefetch: 1, ClaimAfter: claimAfter})
	d := e.recv(slow, "the slow consumer's message")
	other := e.subscribe(buses[1], topic, "g", bus.SubscribeOptions{Consumer: "other", Prefetch: 1, ClaimAfter: claimAfter})
	c := newCollector()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.drain(e.ctx, e.t, "other", other)
	}()
	time.Sleep(5 * e.opts.ClaimAfter) // the handler's work: 2.5 times the group's ClaimAfter
	e.ack(d)
	next := e.publishN(e.b, topic, 1, 2)[0]
	// The next message goes to either member; "other" acks by itself.
	select {
	case d2 := <-slow.Deliveries():
		require.Equal(e.t, next, d2.Message().ID)
		e.ack(d2)
		c.add("slow", string(d2.Message().Payload))
	case <-c.change:
	case <-time.After(e.opts.Timeout):
		e.t.Fatal("the next message reached no member")
	}
	c.waitDistinct(e.t, 1, e.opts.Timeout, "next message")
	e.waitLag(e.b, topic, "g", 0, 0)
	require.NoError(e.t, other.Close())
	wg.Wait()
	counts, _, _ := c.snapshot()
	require.Zero(e.t, counts["m0"], "the slow consumer's message %s was run twice", id)
}

// Two hosts share a group; one crashes with deliveries in flight (some acked an instant
// before). The other handles every message; messages handled twice are at most those that
// were in flight on the crashed host.
func testCrashInFlight(e *env) {
	if e.opts.Crash == nil || e.opts.Peer == nil {
		e.t.Skip("needs the Crash and Peer hooks (a shared backend)")
	}
	topic := e.topic("t")
	peer := e.opts.Peer(e.t, e.b)
	e.t.Cleanup(func() { _ = peer.Close() })
	const n, inFlight = 40, 5
	victim := e.subscribe(e.b, topic, "g", bus.SubscribeOptions{Consumer: "victim", Prefetch: inFlight, ClaimAfter: e.opts.ClaimAfter})
	e.publishN(peer, topic, 0, n)
	var held []bus.Delivery
	for i := range inFlight {
		held = append(held, e.recv(victim, fmt.Sprintf("victim's delivery %d", i)))
	}
	handled := map[string]int{}
	for _, d := range held[:2] {
		e.ack(d) // may or may not reach the broker before the crash
		handled[string(d.Message().Payload)]++
	}
	survivor := e.subscribe(peer, topic, "g", bus.SubscribeOptions{Consumer: "survivor", Prefetch: 10, ClaimAfter: e.opts.ClaimAfter})
	c := newCollector()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.drain(e.ctx, e.t, "survivor", survivor)
	}()
	if b := e.opts.Crash(e.t, e.b); b != nil && b != peer {
		e.t.Cleanup(func() { _ = b.Close() })
	}
	c.waitDistinct(e.t, n-2, e.opts.Timeout, "survivor")
	e.waitLag(peer, topic, "g", 0, 0)
	require.NoError(e.t, survivor.Close())
	wg.Wait()
	counts, _, total := c.snapshot()
	for k, v := range counts {
		require.Equal(e.t, 1, v, "the survivor got %s %d times", k, v)
		handled[k] += v
	}
	dup := 0
	for i := range n {
		k := fmt.Sprintf("m%d", i)
		require.GreaterOrEqual(e.t, handled[k], 1, "message %d lost in the crash", i)
		dup += handled[k] - 1
	}
	require.LessOrEqual(e.t, dup, inFlight, "duplicates are bounded by what was in flight (%d handled by the survivor)", total)
}

// The broker restarts while messages flow: Publish fails with bus.ErrUnavailable (or ErrClosed
// for an embedded bus being reopened) only while it is down, the subscription resumes by itself
// (or is made again on the reopened bus), and every message Publish acknowledged is delivered.
func testBrokerRestart(e *env) {
	if e.opts.Restartable == nil {
		e.t.Skip("no Restartable hook for this backend")
	}
	topic := e.topic("t")
	b, restart := e.opts.Restartable(e.t)
	e.t.Cleanup(func() { _ = b.Close() })
	const n = 200
	c := newCollector()
	c.lenient = true
	var wg sync.WaitGroup
	consume := func(b bus.Bus) {
		sub := e.subscribe(b, topic, "g", bus.SubscribeOptions{Consumer: "c", Prefetch: 16, ClaimAfter: e.opts.ClaimAfter})
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.drain(e.ctx, e.t, "c", sub)
		}()
	}
	consume(b)
	e.publishN(b, topic, 0, n/2)
	c.waitDistinct(e.t, n/4, e.opts.Timeout, "before the restart")

	nb := restart(e.t)
	require.NotNil(e.t, nb, "restart returned no bus")
	if nb != b {
		e.t.Cleanup(func() { _ = nb.Close() })
		consume(nb)
	}
	deadline := time.Now().Add(e.opts.Timeout)
	for i := n / 2; i < n; i++ {
		for {
			_, err := nb.Publish(e.ctx, topic, msg(i))
			if err == nil {
				break
			}
			require.True(e.t, errors.Is(err, bus.ErrUnavailable) || errors.Is(err, bus.ErrClosed),
				"publish %d after the restart: %v must wrap bus.ErrUnavailable", i, err)
			require.True(e.t, time.Now().Before(deadline), "publish %d: still failing after %s: %v", i, e.opts.Timeout, err)
			time.Sleep(20 * time.Millisecond)
		}
	}
	c.waitDistinct(e.t, n, e.opts.Timeout, "after the restart")
	e.waitLag(nb, topic, "g", 0, 0)
	require.NoError(e.t, nb.Close())
	require.NoError(e.t, b.Close())
	wg.Wait()
}
