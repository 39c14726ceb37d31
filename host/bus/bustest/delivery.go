package bustest

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/bus"
)

// A nacked message comes back, with the same ID and a growing delivery count, until acked.
func testNackRedelivers(e *env) {
	topic := e.topic("t")
	id := e.publishN(e.b, topic, 0, 1)[0]
	sub := e.subscribe(e.b, topic, "g", bus.SubscribeOptions{Consumer: "c"})
	for n := 1; n <= 3; n++ {
		d := e.recv(sub, fmt.Sprintf("delivery %d", n))
		require.Equal(e.t, id, d.Message().ID, "a redelivery keeps the message ID")
		require.Equal(e.t, "m0", string(d.Message().Payload))
		require.Equal(e.t, map[string]string{"n": "0"}, d.Message().Headers, "a redelivery keeps the headers")
		require.Equal(e.t, n, d.Deliveries(), "delivery count")
		if n < 3 {
			require.NoError(e.t, d.Nack(e.ctx))
			continue
		}
		e.ack(d)
	}
	e.quiet(sub, "after the ack")
	e.waitLag(e.b, topic, "g", 0, 0)
}

// With Prefetch 1 a consumer never has two unsettled deliveries: while one is held (for a
// moment, in another goroutine, as a handler would) no other arrives, even though the reader
// keeps waiting on the channel. Messages are first delivered in publish order.
func testPrefetchOneNoNextBeforeAck(e *env) {
	topic := e.topic("t")
	const n = 40
	ids := e.publishN(e.b, topic, 0, n)
	sub := e.subscribe(e.b, topic, "g", bus.SubscribeOptions{Consumer: "c", Prefetch: 1})
	var outstanding atomic.Int32
	var wg sync.WaitGroup
	var first []string
	seen := map[string]bool{}
	acked := 0
	ackedCh := make(chan struct{}, n)
	rng := rand.New(rand.NewPCG(1, 2))
	for acked < n {
		var d bus.Delivery
		select {
		case d = <-sub.Deliveries():
		case <-ackedCh:
			acked++
			continue
		case <-time.After(e.opts.Timeout):
			e.t.Fatalf("no delivery within %s (%d of %d acked)", e.opts.Timeout, acked, n)
		}
		require.NotNil(e.t, d)
		require.Equal(e.t, int32(1), outstanding.Add(1), "a second delivery arrived while %s was unsettled", d.Message().ID)
		id := d.Message().ID
		if !seen[id] {
			seen[id] = true
			first = append(first, id)
		}
		nack := len(first)%7 == 3 && d.Deliveries() == 1
		hold := time.Duration(rng.IntN(3)) * time.Millisecond
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(hold) // the handler's work: the window in which nothing may arrive
			outstanding.Add(-1)
			if nack {
				if err := d.Nack(e.ctx); err != nil {
					e.t.Errorf("nack: %v", err)
				}
				return
			}
			if err := d.Ack(e.ctx); err != nil {
				e.t.Errorf("ack: %v", err)
			}
			ackedCh <- struct{}{}
		}()
	}
	wg.Wait()
	require.Equal(e.t, ids, first, "first deliveries follow publish order")
	e.quiet(sub, "after every message was acked")
}

// Prefetch caps the deliveries a consumer holds unsettled; settling one lets exactly one more in.
func testPrefetchCapsOutstanding(e *env) {
	topic := e.topic("t")
	e.publishN(e.b, topic, 0, 10)
	sub := e.subscribe(e.b, topic, "g", bus.SubscribeOptions{Consumer: "c", Prefetch: 3})
	held := []bus.Delivery{e.recv(sub, "1st"), e.recv(sub, "2nd"), e.recv(sub, "3rd")}
	e.quiet(sub, "three held with Prefetch 3")
	got := map[string]bool{string(held[0].Message().Payload): true}
	e.ack(held[0])
	held = append(held[1:], e.recv(sub, "one more after an ack"))
	e.quiet(sub, "three held again")
	require.NoError(e.t, held[0].Nack(e.ctx))
	held = held[1:]
	d := e.recv(sub, "after a nack")
	held = append(held, d)
	e.quiet(sub, "three held after the nack")
	for len(got) < 10 {
		for _, d := range held {
			got[string(d.Message().Payload)] = true
			e.ack(d)
		}
		held = held[:0]
		if len(got) < 10 {
			held = append(held, e.recv(sub, "the rest"))
		}
	}
	e.waitLag(e.b, topic, "g", 0, 0)
}

// Subscribers come and go while messages are published: some close with deliveries unacked or
// nacked, names are reused, new members start. Every message is acked in the end.
func testNoLossOnResubscribe(e *env) {
	topic := e.topic("t")
	const n = 200
	done := make(chan error, 1)
	// The group exists before publishing starts, so nothing depends on the start position.
	first := e.subscribe(e.b, topic, "g", bus.SubscribeOptions{Consumer: "c0", Prefetch: 4, ClaimAfter: e.opts.ClaimAfter})
	go func() {
		for i := range n {
			if _, err := e.b.Publish(e.ctx, topic, msg(i)); err != nil {
				done <- fmt.Errorf("publish %d: %w", i, err)
				return
			}
		}
		done <- nil
	}()
	acked := newCollector()
	sub := first
	for r := range 8 {
		if r > 0 {
			sub = e.subscribe(e.b, topic, "g", bus.SubscribeOptions{Consumer: fmt.Sprintf("c%d", r%3), Prefetch: 4, ClaimAfter: e.opts.ClaimAfter})
		}
		take := 5 + r
		for i := range take {
			d := e.recv(sub, fmt.Sprintf("round %d, delivery %d", r, i))
			switch {
			case i == take-1:
				// left unsettled: the subscription closes with it pending
			case i == 2:
				require.NoError(e.t, d.Nack(e.ctx))
			default:
				e.ack(d)
				acked.add(fmt.Sprintf("c%d", r%3), string(d.Message().Payload))
			}
		}
		require.NoError(e.t, sub.Close())
	}
	final := e.subscribe(e.b, topic, "g", bus.SubscribeOptions{Consumer: "final", Prefetch: 16, ClaimAfter: e.opts.ClaimAfter})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		acked.drain(e.ctx, e.t, "final", final)
	}()
	require.NoError(e.t, <-done)
	acked.waitDistinct(e.t, n, e.opts.Timeout, "acked messages")
	e.waitLag(e.b, topic, "g", 0, 0)
	require.NoError(e.t, final.Close())
	wg.Wait()
	counts, _, _ := acked.snapshot()
	for i := range n {
		require.GreaterOrEqual(e.t, counts[fmt.Sprintf("m%d", i)], 1, "message %d", i)
	}
}
