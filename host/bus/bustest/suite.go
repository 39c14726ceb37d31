// Package bustest is the one conformance suite every bus.Bus backend runs, so the embedded bus
// and Redis Streams keep the same promises: the Bus doc comment and the event center's list
// (publish/subscribe, many concurrent subscribers, redelivery after a nack, no next message
// before an ack with Prefetch 1, no loss when subscribers close and new ones start, consumer
// groups, old messages reaching a new reliable group, recovery when the broker restarts
// mid-stream, the claim of messages a dead consumer left pending, and an alive slow consumer
// keeping its message).
//
// It is a non-test package so each backend's own test calls Run with a constructor and the
// hooks only it can provide (restart its broker, crash a bus, open a second bus on the same
// broker). It owns no backend and must not import one.
//
// Every subtest uses its own topic names (unique per Run), so the buses newBus returns may share
// one broker and several runs may share one server. Subtests run in parallel and wait on
// deliveries, never on fixed sleeps; the few negative checks ("nothing else arrives") watch a
// short window and can only fail, never pass, by a slow machine.
package bustest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/bus"
)

// Options are the hooks and timings of one backend's run. Only what a backend cannot do is
// left nil; the subtests that need a nil hook are skipped with a message saying so.
type Options struct {
	// Restartable returns a bus whose broker the test may restart, and restart, which stops the
	// broker in the middle of a stream, starts it again on the same data and returns the bus to go
	// on with: the same one when the bus reconnects by itself (redisbus on a private
	// redis-server), a reopened one for an embedded bus. Nil skips BrokerRestart.
	Restartable func(t *testing.T) (b bus.Bus, restart func(t *testing.T) bus.Bus)
	// Crash ends b as kill -9 ends a process: no pending ack is flushed, nothing is released, no
	// heartbeat runs any more, and its subscriptions' deliveries stay pending on their consumers.
	// It returns a bus on the same storage to go on with: a second bus on the same broker for a
	// shared backend, the reopened directory for an embedded one. Nil skips the crash subtests.
	Crash func(t *testing.T, b bus.Bus) bus.Bus
	// Peer returns another bus on b's broker, as a second host of a cluster would have one.
	// Nil for a backend that is not Features.Shared.
	Peer func(t *testing.T, b bus.Bus) bus.Bus
	// AutoTrim says the buses newBus returns trim on their own within Timeout (a short trim
	// interval); the Trim subtest then also waits for that.
	AutoTrim bool
	// ClaimAfter is the claim timeout of the claim subtests [500ms]. The alive-slow-consumer
	// subtest uses twice this and holds its message for five times this.
	ClaimAfter time.Duration
	// Timeout bounds every wait for something that must happen [20s].
	Timeout time.Duration
	// Quiet is the window of the negative checks ("no other delivery arrives") [150ms].
	Quiet time.Duration
}

func (o Options) withDefaults() Options {
	if o.ClaimAfter <= 0 {
		o.ClaimAfter = 500 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = 20 * time.Second
	}
	if o.Quiet <= 0 {
		o.Quiet = 150 * time.Millisecond
	}
	return o
}

// Inspector is implemented by backends that let callers look at and trim a topic; both Trellis
// backends do. The Trim subtest uses it and is skipped for a backend without it.
type Inspector interface {
	// Len is the number of messages kept on the topic (0 for an unknown topic).
	Len(ctx context.Context, topic string) (int64, error)
	// Trim removes, now, the messages every group of the topic has acknowledged and returns how
	// many it removed. A topic without groups is left alone.
	Trim(ctx context.Context, topic string) (int64, error)
}

// Run runs the conformance suite. newBus is called once per subtest (a few subtests call it
// more than once) and must return an open bus the subtest may Close; Close is safe twice, so
// the backend's test may also close it in t.Cleanup. Subtests run in parallel.
func Run(t *testing.T, newBus func(t *testing.T) bus.Bus, opts Options) {
	t.Helper()
	s := &suite{newBus: newBus, opts: opts.withDefaults(), run: randomHex(4)}
	tests := []struct {
		name string
		fn   func(e *env)
	}{
		{"PublishSubscribe", testPublishSubscribe},
		{"PublishBatchKeepsOrder", testPublishBatchKeepsOrder},
		{"Payloads", testPayloads},
		{"InvalidArguments", testInvalidArguments},
		{"CanceledContext", testCanceledContext},
		{"ManyConcurrentSubscribers", testManyConcurrentSubscribers},
		{"GroupsEachGetEverything", testGroupsEachGetEverything},
		{"GroupMembersShare", testGroupMembersShare},
		{"NackRedelivers", testNackRedelivers},
		{"PrefetchOneNoNextBeforeAck", testPrefetchOneNoNextBeforeAck},
		{"PrefetchCapsOutstanding", testPrefetchCapsOutstanding},
		{"NoLossWhenSubscribersCloseAndNewStart", testNoLossOnResubscribe},
		{"OldMessagesReachNewReliableGroup", testOldMessagesReachNewGroup},
		{"StartNewest", testStartNewest},
		{"ReliableGroupKeepsMessagesWhileNoConsumer", testGroupKeepsWhileNoConsumer},
		{"SkipBacklog", testSkipBacklog},
		{"ClaimAfterConsumerClosed", testClaimAfterClose},
		{"ClaimAfterCrash", testClaimAfterCrash},
		{"ClaimDisabled", testClaimDisabled},
		{"SameConsumerGetsItsPendingBack", testSameConsumerResumes},
		{"AliveSlowConsumerKeepsItsMessage", testAliveSlowConsumer},
		{"CrashLosesNothingDuplicatesBounded", testCrashInFlight},
		{"BrokerRestartMidStream", testBrokerRestart},
		{"Lag", testLag},
		{"DeleteGroup", testDeleteGroup},
		{"Trim", testTrim},
		{"AckAfterCloseAndTwice", testAckAfterCloseAndTwice},
		{"Close", testClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(s.setup(t))
		})
	}
}

type suite struct {
	newBus func(t *testing.T) bus.Bus
	opts   Options
	run    string
}

// env is one subtest's bundle: its bus, context, options and unique names.
type env struct {
	t    *testing.T
	s    *suite
	b    bus.Bus
	ctx  context.Context
	opts Options
	id   string
}

func (s *suite) setup(t *testing.T) *env {
	t.Helper()
	b := s.newBus(t)
	require.NotNil(t, b, "newBus returned nil")
	t.Cleanup(func() { _ = b.Close() })
	name := t.Name()
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*s.opts.Timeout)
	t.Cleanup(cancel)
	return &env{t: t, s: s, b: b, ctx: ctx, opts: s.opts, id: "bt" + s.run + "." + name}
}

// topic is a topic name no other subtest or run uses.
func (e *env) topic(n string) string { return e.id + "." + n }

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// msg is a message whose payload and "n" header both say i.
func msg(i int) *bus.Message {
	return &bus.Message{Payload: []byte(fmt.Sprintf("m%d", i)), Headers: map[string]string{"n": fmt.Sprint(i)}}
}

// publishN publishes messages from..to-1 one Publish call each and returns their IDs.
func (e *env) publishN(b bus.Bus, topic string, from, to int) []string {
	e.t.Helper()
	ids := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		got, err := b.Publish(e.ctx, topic, msg(i))
		require.NoError(e.t, err, "publish %d", i)
		require.Len(e.t, got, 1)
		ids = append(ids, got[0])
	}
	return ids
}

func (e *env) subscribe(b bus.Bus, topic, group string, o bus.SubscribeOptions) bus.Subscription {
	e.t.Helper()
	sub, err := b.Subscribe(e.ctx, topic, group, o)
	require.NoError(e.t, err, "subscribe %s/%s as %s", topic, group, o.Consumer)
	e.t.Cleanup(func() { _ = sub.Close() })
	return sub
}

// recv waits for the next delivery; it fails the test after Timeout or when the subscription
// ends.
func (e *env) recv(sub bus.Subscription, what string) bus.Delivery {
	e.t.Helper()
	select {
	case d, ok := <-sub.Deliveries():
		require.True(e.t, ok, "%s: the subscription ended before a delivery came", what)
		require.NotNil(e.t, d, "%s: nil delivery", what)
		return d
	case <-time.After(e.opts.Timeout):
		e.t.Fatalf("%s: no delivery within %s", what, e.opts.Timeout)
		return nil
	}
}

// quiet fails if a delivery arrives within the Quiet window.
func (e *env) quiet(sub bus.Subscription, what string) {
	e.t.Helper()
	select {
	case d, ok := <-sub.Deliveries():
		if ok {
			e.t.Fatalf("%s: unexpected delivery of %q (%s, delivery %d)", what, d.Message().Payload, d.Message().ID, d.Deliveries())
		}
	case <-time.After(e.opts.Quiet):
	}
}

// ack acks d and fails the test on error.
func (e *env) ack(d bus.Delivery) {
	e.t.Helper()
	require.NoError(e.t, d.Ack(e.ctx), "ack %s", d.Message().ID)
}

// lagOf returns the lag of one group, failing when the topic has no such group.
func (e *env) lagOf(b bus.Bus, topic, group string) bus.GroupLag {
	e.t.Helper()
	lags, err := b.Lag(e.ctx, topic)
	require.NoError(e.t, err, "lag %s", topic)
	for _, l := range lags {
		if l.Group == group {
			return l
		}
	}
	e.t.Fatalf("lag of %s: no group %q in %+v", topic, group, lags)
	return bus.GroupLag{}
}

// waitLag waits until the group's pending and undelivered counts are as given: acks may reach
// the broker a little after Ack returns.
func (e *env) waitLag(b bus.Bus, topic, group string, pending, undelivered int64) {
	e.t.Helper()
	var last bus.GroupLag
	require.Eventually(e.t, func() bool {
		last = e.lagOf(b, topic, group)
		return last.Pending == pending && last.Undelivered == undelivered
	}, e.opts.Timeout, 20*time.Millisecond, "lag of %s/%s: want pending %d undelivered %d", topic, group, pending, undelivered)
	_ = last
}

// collector records deliveries from several subscriptions, acking each as it arrives.
type collector struct {
	mu     sync.Mutex
	counts map[string]int // payload -> deliveries seen
	byCons map[string]int // consumer -> deliveries seen
	total  int
	change chan struct{}
	// lenient tolerates acks failing because the bus went away (broker restarts): the message
	// is then redelivered, which the counts show.
	lenient bool
}

func newCollector() *collector {
	return &collector{counts: map[string]int{}, byCons: map[string]int{}, change: make(chan struct{}, 1)}
}

// drain acks every delivery of sub until the subscription ends; run it in a goroutine.
func (c *collector) drain(ctx context.Context, t *testing.T, consumer string, sub bus.Subscription) {
	for d := range sub.Deliveries() {
		if err := d.Ack(ctx); err != nil && !(c.lenient && (errors.Is(err, bus.ErrClosed) || errors.Is(err, bus.ErrUnavailable))) {
			t.Errorf("%s: ack %s: %v", consumer, d.Message().ID, err)
		}
		c.add(consumer, string(d.Message().Payload))
	}
}

func (c *collector) add(consumer, payload string) {
	c.mu.Lock()
	c.counts[payload]++
	c.byCons[consumer]++
	c.total++
	c.mu.Unlock()
	select {
	case c.change <- struct{}{}:
	default:
	}
}

// waitDistinct waits until n distinct payloads were seen.
func (c *collector) waitDistinct(t *testing.T, n int, timeout time.Duration, what string) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		got := len(c.counts)
		c.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-c.change:
		case <-deadline:
			c.mu.Lock()
			defer c.mu.Unlock()
			t.Fatalf("%s: %d of %d distinct messages after %s", what, len(c.counts), n, timeout)
		}
	}
}

func (c *collector) snapshot() (counts map[string]int, byCons map[string]int, total int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	counts = make(map[string]int, len(c.counts))
	for k, v := range c.counts {
		counts[k] = v
	}
	byCons = make(map[string]int, len(c.byCons))
	for k, v := range c.byCons {
		byCons[k] = v
	}
	return counts, byCons, c.total
}
