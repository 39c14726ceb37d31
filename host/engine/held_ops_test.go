package engine_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/host/bus/redisbus"
	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

// dyingBus is a host's bus that dies in the middle of moving a delivery to a held queue: the
// held entry is published, then the host freezes before it acknowledges the original delivery
// (until the test ends), as a process killed between the two calls would leave them.
type dyingBus struct {
	bus.Bus
	once    sync.Once
	died    chan struct{}
	release chan struct{}
}

func (d *dyingBus) Publish(ctx context.Context, topic string, msgs ...*bus.Message) ([]string, error) {
	if !strings.HasPrefix(topic, "held:") {
		return d.Bus.Publish(ctx, topic, msgs...)
	}
	ids, err := d.Bus.Publish(ctx, topic, msgs...)
	if err != nil {
		return ids, err
	}
	d.once.Do(func() { close(d.died) })
	<-d.release
	return nil, errors.New("the host is dead")
}

// TestHeldDeliveryOfADeadHolder: two hosts share Redis. The first takes a node of a paused
// request and dies halfway through holding it — its held entry published, the delivery it came
// from not acknowledged. The second host claims what the first left (the delivery and the held
// entry) and holds both: while the request is paused the node does not run; after the resume it
// runs, once. Nothing is lost.
func TestHeldDeliveryOfADeadHolder(t *testing.T) {
	t.Parallel()
	url := os.Getenv("TRELLIS_TEST_REDIS")
	if url == "" {
		t.Skip("TRELLIS_TEST_REDIS is not set; run `eval \"$(scripts/services.sh start)\"` to test against a real Redis")
	}
	prefix := "trellis:enginedead:" + vocab.NewID("") + ":"
	open := func() *redisbus.Bus {
		rb, err := redisbus.New(redisbus.Options{URL: url, Prefix: prefix, Block: 200 * time.Millisecond})
		require.NoError(t, err)
		t.Cleanup(func() { _ = rb.Close() })
		return rb
	}
	const claimAfter = 900 * time.Millisecond
	busA := open()
	dying := &dyingBus{Bus: busA, died: make(chan struct{}), release: make(chan struct{})}
	b := newBundle(t, opsApp)
	first := b.newEngine(vocab.NewID("inst_"), func(o *engine.Options) { o.Bus, o.ClaimAfter = dying, claimAfter })
	t.Cleanup(func() { close(dying.release) }) // runs before the engine's Stop

	req, held := pausedRequest(t, b, first, 1)
	select {
	case <-dying.died:
	case <-time.After(10 * time.Second):
		t.Fatal("the first host never moved the node to the held queue")
	}
	require.NoError(t, busA.Close()) // dead: no more reads, acks or heartbeats

	b.eng = b.newEngine(b.instance, func(o *engine.Options) { o.Bus, o.ClaimAfter = open(), claimAfter })
	time.Sleep(3*claimAfter + holdFor) // the second host claims what the first held, and holds it
	neverRan(t, b, held, logstore.StagePaused)
	r, err := b.eng.ResumeRequest(b.ctx, req)
	require.NoError(t, err)
	require.Equal(t, held, r.Nodes)
	ranOnce(t, b, held)
	for _, n := range held {
		require.Contains(t, latest(b, n).Host, b.instance, "the live host ran it")
	}
}
