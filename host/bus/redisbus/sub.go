package redisbus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/trellis-run/trellis/host/bus"
)

// releaseIdle is the idle time a released entry gets (XCLAIM … IDLE): longer than any
// ClaimAfter, so the next claim of any member takes it.
const releaseIdle = 30 * 24 * time.Hour

// sub is one consumer of a group. Three goroutines serve it: the reader (XREADGROUP, first the
// consumer's own pending entries, then new ones) fills ready while it holds fewer than Prefetch
// entries; the dispatcher hands ready entries out while fewer than Prefetch are unsettled; the
// maintainer heartbeats what the subscription holds and claims what dead consumers left.
type sub struct {
	b                             *Bus
	topic, group, consumer, key   string
	startPos                      bus.StartPosition
	prefetch                      int
	claimAfter, heartbeat, claimE time.Duration // claimAfter < 0: never claims
	deleted                       atomic.Bool   // DeleteGroup: the group is gone for good

	out                                 chan bus.Delivery
	closing                             chan struct{}
	readerDone, dispatchDone, maintDone chan struct{}
	closeOnce                           sync.Once
	room                                chan struct{}                // the reader may read more
	readyCh                             chan struct{}                // the dispatcher may hand out more
	clientID                            atomic.Int64                 // the reader's connection, for CLIENT UNBLOCK
	node                                atomic.Pointer[redis.Client] // the server of that connection
	historyDone                         atomic.Bool

	mu          sync.Mutex
	started     bool
	ready       []*delivery          // read or claimed, not handed out; redeliveries first
	outstanding int                  // handed out, not settled
	held        map[string]*delivery // every entry of the consumer's pending list this subscription holds
	// ackedDuringRead collects the entries whose XACK lands while the reader reads the
	// consumer's pending list back (nil otherwise): such a read may still return an entry acked
	// a moment later, after acked forgot it, and handing it out again would be a needless
	// duplicate.
	ackedDuringRead map[string]bool
}

var (
	_ bus.Subscription = (*sub)(nil)
	_ bus.Delivery     = (*delivery)(nil)
)

func newSub(b *Bus, topic, group string, o bus.SubscribeOptions) *sub {
	prefetch := o.Prefetch
	if prefetch == 0 {
		prefetch = bus.DefaultPrefetch
	}
	claimAfter := o.ClaimAfter
	if claimAfter == 0 {
		claimAfter = b.opts.DefaultClaimAfter
	}
	// The heartbeat follows the group's ClaimAfter (members of a group should share it); a
	// member that does not claim still keeps its own entries fresh for the others' default.
	beatBase := claimAfter
	if beatBase < 0 {
		beatBase = b.opts.DefaultClaimAfter
	}
	return &sub{
		b: b, topic: topic, group: group, consumer: o.Consumer, key: b.key(topic),
		startPos: o.Start, prefetch: prefetch,
		claimAfter: claimAfter, heartbeat: max(beatBase/4, time.Millisecond), claimE: max(claimAfter/2, time.Millisecond),
		out: make(chan bus.Delivery), closing: make(chan struct{}),
		readerDone: make(chan struct{}), dispatchDone: make(chan struct{}), maintDone: make(chan struct{}),
		room: make(chan struct{}, 1), readyCh: make(chan struct{}, 1),
		held: map[string]*delivery{},
	}
}

// start runs the subscription's goroutines unless it was closed already (the bus closing
// while Subscribe created the group).
func (s *sub) start() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closingNow() {
		return false
	}
	s.started = true
	go s.readLoop()
	go s.dispatchLoop()
	go s.maintainLoop()
	return true
}

// Deliveries yields deliveries until the subscription or the bus is closed.
func (s *sub) Deliveries() <-chan bus.Delivery { return s.out }

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (s *sub) closingNow() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// free is how many more entries the reader or the claimer may take in.
func (s *sub) free() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.prefetch - len(s.ready) - s.outstanding
}

// push adds entries read or claimed to ready, skipping those the subscription holds already.
func (s *sub) push(ds []*delivery, front bool) {
	s.mu.Lock()
	fresh := ds[:0]
	for _, d := range ds {
		if s.held[d.id] != nil || s.ackedDuringRead[d.id] {
			continue
		}
		s.held[d.id] = d
		fresh = append(fresh, d)
	}
	if front {
		s.ready = append(append(make([]*delivery, 0, len(fresh)+len(s.ready)), fresh...), s.ready...)
	} else {
		s.ready = append(s.ready, fresh...)
	}
	s.mu.Unlock()
	signal(s.readyCh)
}

func (s *sub) readLoop() {
	defer close(s.readerDone)
	b := s.b
	var conn *redis.Conn
	defer func() {
		if conn != nil {
			_ = conn.Close()
		}
	}()
	history, cursor := true, "0"
	var backoff time.Duration
	down := false
	for {
		n := s.free()
		if n <= 0 {
			select {
			case <-s.room:
				continue
			case <-s.closing:
				return
			}
		}
		if s.closingNow() {
			return
		}
		var err error
		if conn == nil {
			ctx, cancel := b.opCtx(context.Background())
			var node *redis.Client
			conn, node, err = b.readerConn(ctx, s.key)
			if err == nil {
				var id int64
				id, err = conn.ClientID(ctx).Result()
				if err == nil {
					s.node.Store(node)
					s.clientID.Store(id)
				}
			}
			cancel()
		}
		var res []redis.XStream
		if history {
			s.mu.Lock()
			s.ackedDuringRead = map[string]bool{}
			s.mu.Unlock()
		}
		if err == nil {
			args := &redis.XReadGroupArgs{Group: s.group, Consumer: s.consumer, Count: int64(n), Block: -1}
			if history {
				args.Streams = []string{s.key, cursor}
			} else {
				args.Streams = []string{s.key, ">"}
				args.Block = b.opts.Block
			}
			res, err = conn.XReadGroup(context.Background(), args).Result()
		}
		switch {
		case err == nil || errors.Is(err, redis.Nil):
			if down {
				b.opts.Logger.Info("redisbus: subscription resumed", "topic", s.topic, "group", s.group, "consumer", s.consumer)
				down = false
			}
			backoff = 0
		case isNoGroup(err):
			if s.deleted.Load() || s.closingNow() {
				return
			}
			b.opts.Logger.Warn("redisbus: the consumer group is gone (deleted, or Redis lost its data); recreating it",
				"topic", s.topic, "group", s.group)
			if gerr := b.ensureGroup(context.Background(), s.key, s.group, s.startPos); gerr != nil {
				err = gerr
				break
			}
			history, cursor = true, "0"
			continue
		}
		if err != nil && !errors.Is(err, redis.Nil) {
			if s.closingNow() {
				return
			}
			if !down {
				b.opts.Logger.Warn("redisbus: reading failed; retrying with backoff", "topic", s.topic, "group", s.group, "err", err)
				down = true
			}
			if conn != nil {
				_ = conn.Close()
				conn = nil
			}
			s.clientID.Store(0)
			b.readFailed()
			// Entries of a read whose reply was lost are in the pending list: read it again.
			history, cursor = true, "0"
			backoff = min(max(2*backoff, 50*time.Millisecond), 2*time.Second)
			select {
			case <-time.After(backoff):
			case <-s.closing:
				return
			}
			continue
		}
		var msgs []redis.XMessage
		for _, st := range res {
			msgs = append(msgs, st.Messages...)
		}
		if history {
			if len(msgs) == 0 {
				history = false
				s.historyDone.Store(true)
				s.mu.Lock()
				s.ackedDuringRead = nil
				s.mu.Unlock()
				continue
			}
			cursor = msgs[len(msgs)-1].ID
			s.pushPending(msgs, true)
			s.mu.Lock()
			s.ackedDuringRead = nil
			s.mu.Unlock()
			continue
		}
		if len(msgs) > 0 {
			ds := make([]*delivery, len(msgs))
			for i, x := range msgs {
				ds[i] = &delivery{s: s, id: x.ID, msg: decode(x), count: 1}
			}
			s.push(ds, false)
			if len(msgs) < n && b.opts.ReadLinger > 0 {
				// Messages are flowing but slower than one read per entry: let some gather.
				select {
				case <-time.After(b.opts.ReadLinger):
				case <-s.closing:
					return
				}
			}
		}
	}
}

// pushPending adds entries of the consumer's pending list (its own, read back, or claimed) with
// their delivery counts; entries deleted from the stream meanwhile are acked away.
func (s *sub) pushPending(msgs []redis.XMessage, history bool) {
	b := s.b
	counts := map[string]int{}
	ctx, cancel := b.opCtx(context.Background())
	defer cancel()
	if len(msgs) > 0 {
		s.mu.Lock()
		n := len(msgs) + len(s.held)
		s.mu.Unlock()
		if p, err := b.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
			Stream: s.key, Group: s.group, Start: msgs[0].ID, End: msgs[len(msgs)-1].ID, Count: int64(n), Consumer: s.consumer,
		}).Result(); err == nil {
			for _, e := range p {
				counts[e.ID] = int(e.RetryCount)
			}
		}
	}
	ds := make([]*delivery, 0, len(msgs))
	for _, x := range msgs {
		if len(x.Values) == 0 {
			if history {
				b.queueAck(ackItem{s: s, key: s.key, group: s.group, id: x.ID})
			}
			continue
		}
		c, ok := counts[x.ID]
		if !ok || c < 1 {
			c = 2 // unknown (XPENDING failed): it was delivered before, at least once
		}
		ds = append(ds, &delivery{s: s, id: x.ID, msg: decode(x), count: c})
	}
	if len(ds) > 0 {
		s.push(ds, false)
	}
}

func (s *sub) dispatchLoop() {
	defer close(s.dispatchDone)
	defer close(s.out)
	for {
		s.mu.Lock()
		var d *delivery
		if len(s.ready) > 0 && s.outstanding < s.prefetch {
			d = s.ready[0]
			s.ready[0] = nil
			s.ready = s.ready[1:]
			s.outstanding++
			d.handed = true
		}
		s.mu.Unlock()
		if d == nil {
			select {
			case <-s.readyCh:
				continue
			case <-s.closing:
				return
			}
		}
		select {
		case s.out <- d:
		case <-s.closing:
			s.mu.Lock()
			s.outstanding--
			d.handed = false
			s.ready = append([]*delivery{d}, s.ready...)
			s.mu.Unlock()
			return
		}
	}
}

func (s *sub) maintainLoop() {
	defer close(s.maintDone)
	b := s.b
	tick := time.NewTicker(s.heartbeat)
	defer tick.Stop()
	lastClaim := time.Now()
	cursor := "0-0"
	for {
		select {
		case <-s.closing:
			return
		case <-tick.C:
		}
		s.mu.Lock()
		ids := make([]string, 0, len(s.held))
		for id := range s.held {
			ids = append(ids, id)
		}
		s.mu.Unlock()
		if len(ids) > 0 {
			ctx, cancel := b.opCtx(context.Background())
			_, _ = b.touch(ctx, s.key, s.group, s.consumer, -1, -1, ids)
			cancel()
		}
		if s.claimAfter < 0 || time.Since(lastClaim) < s.claimE || !s.historyDone.Load() {
			continue
		}
		lastClaim = time.Now()
		if n := s.free(); n > 0 {
			cursor = s.claim(n, cursor)
		}
	}
}

// claim takes up to n entries idle for ClaimAfter from other consumers (XAUTOCLAIM) and
// returns the cursor for the next round.
func (s *sub) claim(n int, cursor string) string {
	b := s.b
	ctx, cancel := b.opCtx(context.Background())
	defer cancel()
	msgs, next, err := b.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
		Stream: s.key, Group: s.group, Consumer: s.consumer, MinIdle: s.claimAfter, Start: cursor, Count: int64(n),
	}).Result()
	if err != nil {
		return cursor // Redis down, or the group gone: the reader deals with both
	}
	if len(msgs) > 0 {
		s.pushPending(msgs, false)
	}
	return next
}

// Close stops the subscription: entries read but not handed out are released to the group at
// once, the acks queued are sent, and what was handed out unsettled stays pending on this
// consumer (claimed by others after ClaimAfter, or back to a subscription of the same
// consumer). Safe twice.
func (s *sub) Close() error {
	s.closeOnce.Do(s.shutdown)
	return nil
}

func (s *sub) shutdown() {
	b := s.b
	s.mu.Lock()
	close(s.closing)
	started := s.started
	s.mu.Unlock()
	if !started {
		b.forget(s)
		return
	}
	// A blocking XREADGROUP ends at once with CLIENT UNBLOCK; retried until the reader is out,
	// since it may have been between two reads.
	for done := false; !done; {
		if id, node := s.clientID.Load(), s.node.Load(); id != 0 && node != nil {
			ctx, cancel := b.opCtx(context.Background())
			_ = node.ClientUnblock(ctx, id).Err()
			cancel()
		}
		select {
		case <-s.readerDone:
			done = true
		case <-time.After(50 * time.Millisecond):
		}
	}
	<-s.dispatchDone
	<-s.maintDone
	b.mu.Lock()
	crashed := b.crashed
	b.mu.Unlock()
	if !crashed && !s.deleted.Load() {
		s.mu.Lock()
		release := s.ready
		s.ready = nil
		for _, d := range release {
			delete(s.held, d.id)
		}
		s.mu.Unlock()
		ctx, cancel := b.opCtx(context.Background())
		byCount := map[int][]string{}
		for _, d := range release {
			byCount[d.count-1] = append(byCount[d.count-1], d.id)
		}
		for c, ids := range byCount {
			_, _ = b.touch(ctx, s.key, s.group, s.consumer, int64(c), releaseIdle.Milliseconds(), ids)
		}
		_ = b.flushAcks(ctx)
		_ = dropConsumerScript.Run(ctx, b.rdb, []string{s.key}, s.group, s.consumer).Err()
		cancel()
	}
	b.forget(s)
}

// acked forgets an entry whose XACK Redis has.
func (s *sub) acked(id string) {
	s.mu.Lock()
	delete(s.held, id)
	if s.ackedDuringRead != nil {
		s.ackedDuringRead[id] = true
	}
	s.mu.Unlock()
}

// delivery is one entry handed to one subscription.
type delivery struct {
	s       *sub
	id      string
	msg     *bus.Message
	count   int
	handed  bool // under s.mu
	settled bool // under s.mu
}

func (d *delivery) Message() *bus.Message { return d.msg }
func (d *delivery) Deliveries() int       { return d.count }

// settle marks d settled and frees its prefetch slot.
func (d *delivery) settle(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	s := d.s
	if s.b.isClosed() {
		return fmt.Errorf("%s %s: %w", op, d.id, bus.ErrClosed)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if d.settled {
		return fmt.Errorf("%s %s: %w: the delivery was already acked or nacked", op, d.id, bus.ErrInvalid)
	}
	d.settled = true
	if d.handed {
		d.handed = false
		s.outstanding--
	}
	signal(s.room)
	signal(s.readyCh)
	return nil
}

// Ack queues the XACK; it reaches Redis with the next Publish, within AckInterval, or at
// AckBatch acks. A crash in between redelivers the message (at least once).
func (d *delivery) Ack(ctx context.Context) error {
	if err := d.settle(ctx, "ack"); err != nil {
		return err
	}
	s := d.s
	s.b.queueAck(ackItem{s: s, key: s.key, group: s.group, id: d.id})
	return nil
}

// Nack hands the entry to this subscription again, before anything new, with its delivery
// counter bumped in Redis; once the subscription is closed it releases the entry to any member.
// The entry never leaves the group's pending list, so a crash in between loses nothing.
func (d *delivery) Nack(ctx context.Context) error {
	if err := d.settle(ctx, "nack"); err != nil {
		return err
	}
	s, b := d.s, d.s.b
	octx, cancel := b.opCtx(ctx)
	defer cancel()
	if s.closingNow() {
		s.mu.Lock()
		delete(s.held, d.id)
		s.mu.Unlock()
		if _, err := b.touch(octx, s.key, s.group, s.consumer, int64(d.count), releaseIdle.Milliseconds(), []string{d.id}); err != nil {
			return b.wrap(ctx, "nack "+d.id, err)
		}
		return nil
	}
	touched, err := b.touch(octx, s.key, s.group, s.consumer, int64(d.count+1), -1, []string{d.id})
	if err == nil && len(touched) == 0 {
		// Another member claimed it meanwhile (this consumer missed its heartbeats): it is theirs.
		s.mu.Lock()
		delete(s.held, d.id)
		s.mu.Unlock()
		signal(s.room)
		return nil
	}
	// On an error (Redis down) the entry is still in this consumer's pending list: hand it out
	// again all the same; only its delivery counter in Redis lags.
	again := &delivery{s: s, id: d.id, msg: d.msg, count: d.count + 1}
	s.mu.Lock()
	s.held[d.id] = again
	s.ready = append([]*delivery{again}, s.ready...)
	s.mu.Unlock()
	signal(s.readyCh)
	return nil
}
