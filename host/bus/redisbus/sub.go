package redisbus

import (
	"context"
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

// sub is one consumer of a group. It has no goroutine of its own while idle: its reader
// (reader.go) reads its stream together with others of the same group and consumer and pushes
// entries into ready while it holds fewer than Prefetch; a dispatcher goroutine runs only while
// ready entries wait for a free slot; the bus's maintainer (maintain.go) heartbeats what it holds
// and claims what dead consumers left.
type sub struct {
	b                             *Bus
	topic, group, consumer, key   string
	startPos                      bus.StartPosition
	prefetch                      int
	claimAfter, heartbeat, claimE time.Duration // claimAfter < 0: never claims
	deleted                       atomic.Bool   // DeleteGroup: the group is gone for good
	r                             *reader       // set once, before any read
	// Under r.mu: the index in r.subs, and whether a read of the blocking or the direct loop
	// in flight includes this subscription.
	idx               int
	inBlock, inDirect bool

	out         chan bus.Delivery
	closing     chan struct{}
	closeOnce   sync.Once
	life        sync.Mutex // start against shutdown: a started subscription is attached
	started     bool       // under life
	dispatchers sync.WaitGroup
	historyDone atomic.Bool

	// The maintainer's, under its round lock.
	lastClaim   time.Time
	claimCursor string

	mu          sync.Mutex
	ready       []*delivery          // read or claimed, not handed out; redeliveries first
	outstanding int                  // handed out, not settled
	held        map[string]*delivery // every entry of the consumer's pending list this subscription holds
	dispatching bool                 // a dispatcher runs
	// The reader's state of this subscription: how its entries are read, the cursor of its
	// pending entries, and gone once no read may include it any more.
	mode      readMode
	cursor    string
	gone      bool
	lastEntry time.Time // when a read last brought it entries (hot readers let it go after HotFor)
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
		held: map[string]*delivery{}, mode: modeHistory, cursor: "0",
		lastClaim: time.Now(), claimCursor: "0-0",
	}
}

// start hands the subscription to a reader and the maintainer unless it was closed already
// (the bus closing while Subscribe created the group).
func (s *sub) start() bool {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closingNow() {
		return false
	}
	s.started = true
	s.b.maint.add(s)
	s.b.attach(s)
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
	return s.freeLocked()
}

func (s *sub) freeLocked() int { return s.prefetch - len(s.ready) - s.outstanding }

// push adds entries read or claimed to ready, skipping those the subscription holds already.
func (s *sub) push(ds []*delivery, front bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
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
	s.dispatchLocked()
}

// pendingRead is entries of a consumer's pending list, its own read back (history) or claimed,
// for pushPending.
type pendingRead struct {
	s       *sub
	msgs    []redis.XMessage
	history bool
}

// pushPending adds entries of consumers' pending lists with their delivery counts (XPENDING,
// one per subscription, pipelined); entries deleted from the stream meanwhile are acked away.
func (b *Bus) pushPending(reads []pendingRead) {
	if len(reads) == 0 {
		return
	}
	ctx, cancel := b.opCtx(context.Background())
	defer cancel()
	pipe := b.rdb.Pipeline()
	cmds := make([]*redis.XPendingExtCmd, len(reads))
	for i, pr := range reads {
		s := pr.s
		s.mu.Lock()
		n := len(pr.msgs) + len(s.held)
		s.mu.Unlock()
		cmds[i] = pipe.XPendingExt(ctx, &redis.XPendingExtArgs{
			Stream: s.key, Group: s.group, Start: pr.msgs[0].ID, End: pr.msgs[len(pr.msgs)-1].ID, Count: int64(n), Consumer: s.consumer,
		})
	}
	_, _ = pipe.Exec(ctx)
	for i, pr := range reads {
		s := pr.s
		counts := map[string]int{}
		if p, err := cmds[i].Result(); err == nil {
			for _, e := range p {
				counts[e.ID] = int(e.RetryCount)
			}
		}
		ds := make([]*delivery, 0, len(pr.msgs))
		for _, x := range pr.msgs {
			if len(x.Values) == 0 {
				if pr.history {
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
}

// dispatchLocked starts the dispatcher when entries wait and a slot is free. s.mu held.
func (s *sub) dispatchLocked() {
	if s.dispatching || len(s.ready) == 0 || s.outstanding >= s.prefetch || s.closingNow() {
		return
	}
	s.dispatching = true
	s.dispatchers.Add(1)
	go s.dispatch()
}

// dispatch hands ready entries out while a slot is free, then ends.
func (s *sub) dispatch() {
	defer s.dispatchers.Done()
	for {
		s.mu.Lock()
		if len(s.ready) == 0 || s.outstanding >= s.prefetch || s.closingNow() {
			s.dispatching = false
			s.mu.Unlock()
			return
		}
		d := s.ready[0]
		s.ready[0] = nil
		s.ready = s.ready[1:]
		s.outstanding++
		d.handed = true
		s.mu.Unlock()
		select {
		case s.out <- d:
		case <-s.closing:
			s.mu.Lock()
			s.outstanding--
			d.handed = false
			s.ready = append([]*delivery{d}, s.ready...)
			s.dispatching = false
			s.mu.Unlock()
			return
		}
	}
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
	s.gone = true
	s.mu.Unlock()
	s.life.Lock()
	started := s.started
	s.life.Unlock()
	if !started {
		b.forget(s)
		return
	}
	// No read or claim for this subscription is in flight after these: what they brought is in
	// ready.
	b.detach(s)
	b.maint.remove(s)
	s.dispatchers.Wait()
	close(s.out)
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

// settle marks d settled and, unless keep, frees its prefetch slot (Nack keeps it until the
// entry is back in ready, so nothing new slips in before the redelivery).
func (d *delivery) settle(ctx context.Context, op string, keep bool) error {
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
	if !keep {
		s.freeSlotLocked(d)
	}
	return nil
}

// freeSlotLocked gives d's prefetch slot back: the dispatcher may hand out the next entry, and
// the reader may read one more. s.mu held.
func (s *sub) freeSlotLocked(d *delivery) {
	if !d.handed {
		return
	}
	d.handed = false
	s.outstanding--
	s.dispatchLocked()
	// A subscription in the blocking read has the credit counted at its next read; one the
	// direct loop serves is read for now.
	if !s.gone && s.mode != modeShared {
		signal(s.r.directWake)
	}
}

// Ack queues the XACK; it reaches Redis with the next Publish, within AckInterval, or at
// AckBatch acks. A crash in between redelivers the message (at least once).
func (d *delivery) Ack(ctx context.Context) error {
	if err := d.settle(ctx, "ack", false); err != nil {
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
	if err := d.settle(ctx, "nack", true); err != nil {
		return err
	}
	s, b := d.s, d.s.b
	octx, cancel := b.opCtx(ctx)
	defer cancel()
	forget := func() {
		s.mu.Lock()
		delete(s.held, d.id)
		s.freeSlotLocked(d)
		s.mu.Unlock()
	}
	if s.closingNow() {
		forget()
		if _, err := b.touch(octx, s.key, s.group, s.consumer, int64(d.count), releaseIdle.Milliseconds(), []string{d.id}); err != nil {
			return b.wrap(ctx, "nack "+d.id, err)
		}
		return nil
	}
	touched, err := b.touch(octx, s.key, s.group, s.consumer, int64(d.count+1), -1, []string{d.id})
	if err == nil && len(touched) == 0 {
		// Another member claimed it meanwhile (this consumer missed its heartbeats): it is theirs.
		forget()
		return nil
	}
	// On an error (Redis down) the entry is still in this consumer's pending list: hand it out
	// again all the same; only its delivery counter in Redis lags.
	again := &delivery{s: s, id: d.id, msg: d.msg, count: d.count + 1}
	s.mu.Lock()
	s.held[d.id] = again
	s.ready = append([]*delivery{again}, s.ready...)
	s.freeSlotLocked(d)
	s.dispatchLocked()
	s.mu.Unlock()
	return nil
}
