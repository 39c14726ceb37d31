package bustest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/bus"
)

// Published messages arrive once each, in publish order, with their IDs, payloads and headers.
func testPublishSubscribe(e *env) {
	topic := e.topic("t")
	ids := e.publishN(e.b, topic, 0, 5)
	seen := map[string]bool{}
	for _, id := range ids {
		require.NotEmpty(e.t, id, "Publish must assign IDs")
		require.False(e.t, seen[id], "IDs must be unique within a topic: %s twice", id)
		seen[id] = true
	}
	sub := e.subscribe(e.b, topic, "g", bus.SubscribeOptions{Consumer: "c1"})
	for i, id := range ids {
		d := e.recv(sub, fmt.Sprintf("message %d", i))
		m := d.Message()
		require.Equal(e.t, id, m.ID, "message %d: delivered ID must be the published one (publish order)", i)
		require.Equal(e.t, fmt.Sprintf("m%d", i), string(m.Payload))
		require.Equal(e.t, map[string]string{"n": fmt.Sprint(i)}, m.Headers)
		require.Equal(e.t, 1, d.Deliveries(), "first delivery counts 1")
		e.ack(d)
	}
	// A message published while the subscriber runs arrives too.
	id := e.publishN(e.b, topic, 5, 6)[0]
	d := e.recv(sub, "live message")
	require.Equal(e.t, id, d.Message().ID)
	e.ack(d)
	e.quiet(sub, "after every message was acked")
	e.waitLag(e.b, topic, "g", 0, 0)
}

// One Publish of many messages keeps their order and returns one ID per message, in order.
func testPublishBatchKeepsOrder(e *env) {
	topic := e.topic("t")
	const n = 300
	msgs := make([]*bus.Message, n)
	for i := range msgs {
		msgs[i] = msg(i)
	}
	ids, err := e.b.Publish(e.ctx, topic, msgs...)
	require.NoError(e.t, err)
	require.Len(e.t, ids, n)
	empty, err := e.b.Publish(e.ctx, topic)
	require.NoError(e.t, err, "publishing no message is not an error")
	require.Empty(e.t, empty)
	more, err := e.b.Publish(e.ctx, topic, msg(n), msg(n+1))
	require.NoError(e.t, err)
	ids = append(ids, more...)

	sub := e.subscribe(e.b, topic, "g", bus.SubscribeOptions{Consumer: "c1", Prefetch: 50})
	for i := range n + 2 {
		d := e.recv(sub, fmt.Sprintf("message %d", i))
		require.Equal(e.t, ids[i], d.Message().ID, "position %d", i)
		require.Equal(e.t, fmt.Sprintf("m%d", i), string(d.Message().Payload), "position %d", i)
		e.ack(d)
	}
}

// Payloads are opaque bytes: empty, binary with zero bytes, and large ones come back intact, as
// do headers with any text.
func testPayloads(e *env) {
	topic := e.topic("t")
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	bin := []byte{0, 1, 2, 0xff, 0xfe, 0, '\n', '\r', 0}
	cases := []*bus.Message{
		{Payload: nil},
		{Payload: []byte{}},
		{Payload: bin},
		{Payload: big},
		{Payload: []byte(`{"json":true}`), Headers: map[string]string{
			"event-id": "ev-1", "unicode": "事件 ✓", "empty": "", "spaces and = signs": "a=b c",
			"p": "looks like a reserved field name", "_x": "underscore",
		}},
	}
	ids, err := e.b.Publish(e.ctx, topic, cases...)
	require.NoError(e.t, err)
	require.Len(e.t, ids, len(cases))
	sub := e.subscribe(e.b, topic, "g", bus.SubscribeOptions{Consumer: "c1"})
	for i, want := range cases {
		d := e.recv(sub, fmt.Sprintf("payload case %d", i))
		m := d.Message()
		require.Equal(e.t, ids[i], m.ID)
		require.True(e.t, bytes.Equal(want.Payload, m.Payload), "case %d: payload of %d bytes came back as %d bytes", i, len(want.Payload), len(m.Payload))
		if len(want.Headers) == 0 {
			require.Empty(e.t, m.Headers, "case %d: no headers were sent", i)
		} else {
			require.Equal(e.t, want.Headers, m.Headers, "case %d", i)
		}
		e.ack(d)
	}
}

// Bad topics, groups and options fail with bus.ErrInvalid, naming what is wrong.
func testInvalidArguments(e *env) {
	topic := e.topic("t")
	_, err := e.b.Publish(e.ctx, "", msg(1))
	require.ErrorIs(e.t, err, bus.ErrInvalid, "empty topic")
	_, err = e.b.Publish(e.ctx, topic, msg(1), nil)
	require.ErrorIs(e.t, err, bus.ErrInvalid, "nil message")
	_, err = e.b.Publish(e.ctx, "bad topic\n", msg(1))
	require.ErrorIs(e.t, err, bus.ErrInvalid, "control character in topic")

	bad := []struct {
		what, topic, group string
		o                  bus.SubscribeOptions
	}{
		{"empty topic", "", "g", bus.SubscribeOptions{Consumer: "c"}},
		{"empty group", topic, "", bus.SubscribeOptions{Consumer: "c"}},
		{"empty consumer", topic, "g", bus.SubscribeOptions{}},
		{"negative prefetch", topic, "g", bus.SubscribeOptions{Consumer: "c", Prefetch: -1}},
		{"unknown start position", topic, "g", bus.SubscribeOptions{Consumer: "c", Start: bus.StartPosition(42)}},
	}
	for _, tc := range bad {
		sub, err := e.b.Subscribe(e.ctx, tc.topic, tc.group, tc.o)
		require.ErrorIs(e.t, err, bus.ErrInvalid, tc.what)
		require.Nil(e.t, sub, tc.what)
		require.NotEqual(e.t, bus.ErrInvalid.Error(), err.Error(), "%s: the error must say more than the sentinel", tc.what)
	}
	// The same consumer twice in one group of one bus is a mistake the bus can see.
	e.subscribe(e.b, topic, "g", bus.SubscribeOptions{Consumer: "c"})
	_, err = e.b.Subscribe(e.ctx, topic, "g", bus.SubscribeOptions{Consumer: "c"})
	require.ErrorIs(e.t, err, bus.ErrInvalid, "consumer already subscribed to the group")
	require.True(e.t, strings.Contains(err.Error(), "c"), "the error names the consumer: %v", err)
}

// A context that is already canceled fails Publish and Subscribe with the context's error, and
// publishes nothing.
func testCanceledContext(e *env) {
	topic := e.topic("t")
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	_, err := e.b.Publish(ctx, topic, msg(1))
	require.ErrorIs(e.t, err, context.Canceled)
	_, err = e.b.Subscribe(ctx, topic, "g", bus.SubscribeOptions{Consumer: "c"})
	require.ErrorIs(e.t, err, context.Canceled)

	id := e.publishN(e.b, topic, 2, 3)[0]
	sub := e.subscribe(e.b, topic, "g2", bus.SubscribeOptions{Consumer: "c"})
	d := e.recv(sub, "the message published with a live context")
	require.Equal(e.t, id, d.Message().ID, "nothing was published with the canceled context")
	e.ack(d)
}

// Many groups with several members each, fed by concurrent publishers: every group gets every
// message exactly once (nothing fails here, so nothing is redelivered).
func testManyConcurrentSubscribers(e *env) {
	topic := e.topic("t")
	const groups, members, publishers, perPublisher = 4, 3, 4, 150
	const total = publishers * perPublisher
	cols := make([]*collector, groups)
	var wg sync.WaitGroup
	for g := range groups {
		cols[g] = newCollector()
		for m := range members {
			consumer := fmt.Sprintf("c%d", m)
			sub := e.subscribe(e.b, topic, fmt.Sprintf("g%d", g), bus.SubscribeOptions{Consumer: consumer, Prefetch: 8})
			wg.Add(1)
			go func() {
				defer wg.Done()
				cols[g].drain(e.ctx, e.t, consumer, sub)
			}()
		}
	}
	var pub sync.WaitGroup
	errs := make(chan error, publishers)
	for p := range publishers {
		pub.Add(1)
		go func() {
			defer pub.Done()
			for i := range perPublisher {
				if _, err := e.b.Publish(e.ctx, topic, msg(p*perPublisher+i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	pub.Wait()
	close(errs)
	for err := range errs {
		require.NoError(e.t, err, "concurrent publish")
	}
	for g, c := range cols {
		c.waitDistinct(e.t, total, e.opts.Timeout, fmt.Sprintf("group g%d", g))
	}
	for g, c := range cols {
		e.waitLag(e.b, topic, fmt.Sprintf("g%d", g), 0, 0)
		counts, _, n := c.snapshot()
		require.Equal(e.t, total, n, "group g%d: every message exactly once", g)
		for i := range total {
			require.Equal(e.t, 1, counts[fmt.Sprintf("m%d", i)], "group g%d, message %d", g, i)
		}
	}
	require.NoError(e.t, e.b.Close())
	wg.Wait() // Close ended every subscription, so every drain returned
}

// Close ends every subscription; later calls fail with bus.ErrClosed; Close is safe twice, as
// is Subscription.Close.
func testClose(e *env) {
	topic := e.topic("t")
	sub1 := e.subscribe(e.b, topic, "g", bus.SubscribeOptions{Consumer: "c1"})
	sub2 := e.subscribe(e.b, topic, "g2", bus.SubscribeOptions{Consumer: "c2"})
	require.NoError(e.t, sub2.Close())
	require.NoError(e.t, sub2.Close(), "Subscription.Close twice")
	_, ok := <-sub2.Deliveries()
	require.False(e.t, ok, "a closed subscription's channel is closed")

	require.NoError(e.t, e.b.Close())
	require.NoError(e.t, e.b.Close(), "Bus.Close twice")
	_, ok = <-sub1.Deliveries()
	require.False(e.t, ok, "Bus.Close closes every subscription")
	require.NoError(e.t, sub1.Close(), "closing a subscription of a closed bus")

	_, err := e.b.Publish(e.ctx, topic, msg(1))
	require.ErrorIs(e.t, err, bus.ErrClosed)
	_, err = e.b.Subscribe(e.ctx, topic, "g", bus.SubscribeOptions{Consumer: "c1"})
	require.ErrorIs(e.t, err, bus.ErrClosed)
	_, err = e.b.Lag(e.ctx, topic)
	require.ErrorIs(e.t, err, bus.ErrClosed)
	require.ErrorIs(e.t, e.b.DeleteGroup(e.ctx, topic, "g"), bus.ErrClosed)
}

// A delivery may be acked after its subscription closed (a handler that finishes late): the
// message is then handled for the group. Settling a delivery twice is an error.
func testAckAfterCloseAndTwice(e *env) {
	topic := e.topic("t")
	e.publishN(e.b, topic, 0, 2)
	sub := e.subscribe(e.b, topic, "g", bus.SubscribeOptions{Consumer: "c1", Prefetch: 1})
	d := e.recv(sub, "first message")
	require.NoError(e.t, sub.Close())
	e.ack(d)
	err := d.Ack(e.ctx)
	require.Error(e.t, err, "a second Ack")
	require.True(e.t, errors.Is(err, bus.ErrInvalid), "a second Ack fails with bus.ErrInvalid: %v", err)
	require.Error(e.t, d.Nack(e.ctx), "Nack after Ack")
	// m0 is handled; m1 was never delivered to anyone.
	e.waitLag(e.b, topic, "g", 0, 1)

	sub2 := e.subscribe(e.b, topic, "g", bus.SubscribeOptions{Consumer: "c2", ClaimAfter: e.opts.ClaimAfter})
	d2 := e.recv(sub2, "the message nobody got yet")
	require.Equal(e.t, "m1", string(d2.Message().Payload), "the acked message is not delivered again")
	require.NoError(e.t, d2.Nack(e.ctx))
	require.Error(e.t, d2.Ack(e.ctx), "Ack after Nack")
	d3 := e.recv(sub2, "redelivery after nack")
	require.Equal(e.t, "m1", string(d3.Message().Payload))
	e.ack(d3)
	e.waitLag(e.b, topic, "g", 0, 0)
}
