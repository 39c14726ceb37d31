package localbus

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/trellis-run/trellis/host/bus"
)

// sub is one consumer's subscription. Its goroutine (run) takes deliveries from the group while
// it has credit (Prefetch minus what it holds unsettled) and hands them over the channel.
type sub struct {
	b          *Bus
	g          *group
	consumer   string
	claimAfter time.Duration // negative: never claims

	out       chan bus.Delivery
	wake      chan struct{}
	closing   chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	// Under Bus.mu.
	credits   int
	redeliver []*pend          // nacked or adopted, handed out again before anything else
	held      map[uint64]*pend // handed out, not settled
	closed    bool
}

var (
	_ bus.Subscription = (*sub)(nil)
	_ bus.Delivery     = (*delivery)(nil)
)

func newSub(b *Bus, g *group, consumer string, prefetch int, claimAfter time.Duration) *sub {
	s := &sub{
		b: b, g: g, consumer: consumer, claimAfter: claimAfter,
		out: make(chan bus.Delivery), wake: make(chan struct{}, 1),
		closing: make(chan struct{}), done: make(chan struct{}),
		credits: prefetch, held: map[uint64]*pend{},
	}
	return s
}

// Deliveries yields deliveries until the subscription or the bus is closed.
func (s *sub) Deliveries() <-chan bus.Delivery { return s.out }

// Close stops the subscription. What it holds unsettled stays pending: a subscription of the
// same consumer gets it back at once, another member after its ClaimAfter. Safe twice.
func (s *sub) Close() error {
	s.stop()
	return nil
}

func (s *sub) wakeUp() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *sub) stop() {
	s.closeOnce.Do(func() {
		close(s.closing)
		<-s.done
		b, g := s.b, s.g
		b.mu.Lock()
		defer b.mu.Unlock()
		s.closed = true
		if g.subs[s.consumer] == s {
			delete(g.subs, s.consumer)
		}
		now := time.Now()
		for _, p := range s.held {
			if g.pending[p.seq] == p && p.sub == s {
				g.orphan(p, now)
			}
		}
		for _, p := range s.redeliver {
			if g.pending[p.seq] == p && p.sub == s {
				g.orphan(p, time.Time{}) // nacked: any member may take it at once
			}
		}
		s.held, s.redeliver = nil, nil
		g.wakeAll() // the others may claim what this one left
	})
}

func (s *sub) run() {
	defer close(s.done)
	defer close(s.out)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		d, wait, ended := s.take()
		if ended {
			return
		}
		if d == nil {
			var fire <-chan time.Time
			if wait > 0 {
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				fire = timer.C
			}
			select {
			case <-s.wake:
			case <-fire:
			case <-s.closing:
				return
			}
			if fire != nil && !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			continue
		}
		select {
		case s.out <- d:
		case <-s.closing:
			s.putBack(d)
			return
		}
	}
}

// take picks the next delivery for s: a redelivery of its own, then a message a dead consumer
// left for longer than ClaimAfter, then the group's next message. With nothing to take it
// returns how long until an orphan becomes claimable (0: wait for a wake-up).
func (s *sub) take() (d *delivery, wait time.Duration, ended bool) {
	b, g := s.b, s.g
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.closed || b.closed {
		return nil, 0, true
	}
	for s.credits > 0 {
		if len(s.redeliver) > 0 {
			p := s.redeliver[0]
			s.redeliver = s.redeliver[1:]
			if g.pending[p.seq] != p {
				continue // acked meanwhile (by a late ack of an earlier holder)
			}
			if d := s.hand(p); d != nil {
				return d, 0, false
			}
			continue
		}
		var earliest time.Time
		if s.claimAfter >= 0 && len(g.orphans) > 0 {
			now := time.Now()
			var best *pend
			for _, p := range g.orphans {
				due := p.since.Add(s.claimAfter)
				if !due.After(now) {
					if best == nil || p.seq < best.seq {
						best = p
					}
				} else if earliest.IsZero() || due.Before(earliest) {
					earliest = due
				}
			}
			if best != nil {
				delete(g.orphans, best.seq)
				best.consumer, best.sub = s.consumer, s
				if d := s.hand(best); d != nil {
					return d, 0, false
				}
				continue
			}
		}
		if g.next < g.t.durable {
			p := &pend{seq: g.next, consumer: s.consumer, sub: s}
			g.next++
			g.pending[p.seq] = p
			if d := s.hand(p); d != nil {
				return d, 0, false
			}
			continue
		}
		if !earliest.IsZero() {
			return nil, max(time.Until(earliest), time.Millisecond), false
		}
		return nil, 0, false
	}
	return nil, 0, false
}

// hand makes p a delivery of s and logs it. Under Bus.mu.
func (s *sub) hand(p *pend) *delivery {
	b, g := s.b, s.g
	m := g.t.message(p.seq)
	if m == nil {
		// Cannot happen: trimming keeps everything from the group's floor. Drop the entry rather
		// than wedge the group.
		delete(g.pending, p.seq)
		delete(g.orphans, p.seq)
		b.opts.Logger.Error("localbus: a pending message is missing from its topic", "topic", g.t.name, "group", g.name, "seq", p.seq)
		return nil
	}
	p.count++
	s.credits--
	s.held[p.seq] = p
	b.logLazy(func(buf []byte) []byte { return encDeliver(buf, g, p) })
	var headers map[string]string
	if len(m.headers) > 0 {
		headers = make(map[string]string, len(m.headers))
		for k, v := range m.headers {
			headers[k] = v
		}
	}
	msg := &bus.Message{ID: strconv.FormatUint(m.seq, 10), Payload: append([]byte(nil), m.payload...), Headers: headers}
	return &delivery{s: s, p: p, msg: msg, count: p.count}
}

// putBack returns a delivery the closing subscription could not hand over: any member may take
// it at once, and it does not count as delivered.
func (s *sub) putBack(d *delivery) {
	b, g, p := s.b, s.g, d.p
	b.mu.Lock()
	defer b.mu.Unlock()
	if g.pending[p.seq] != p || p.sub != s || b.logDone {
		return
	}
	delete(s.held, p.seq)
	p.count--
	b.logLazy(func(buf []byte) []byte { return encDeliver(buf, g, p) })
	g.orphan(p, time.Time{})
	g.wakeAll()
}

// delivery is one message handed to one subscription.
type delivery struct {
	s       *sub
	p       *pend
	msg     *bus.Message
	count   int
	settled bool // under Bus.mu
}

func (d *delivery) Message() *bus.Message { return d.msg }
func (d *delivery) Deliveries() int       { return d.count }

// Ack marks the message handled for the group. It returns once the ack is in the log's next
// group commit, not after that commit's fsync: an ack lost in a crash means one redelivery.
func (d *delivery) Ack(ctx context.Context) error {
	return d.settle(ctx, true)
}

// Nack hands the message back: to this subscription first (before anything new), or, when the
// subscription has closed, to any member at once.
func (d *delivery) Nack(ctx context.Context) error {
	return d.settle(ctx, false)
}

func (d *delivery) settle(ctx context.Context, ack bool) error {
	op := "nack"
	if ack {
		op = "ack"
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	s, g, p := d.s, d.s.g, d.p
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if d.settled {
		return fmt.Errorf("%s %s: %w: the delivery was already acked or nacked", op, d.msg.ID, bus.ErrInvalid)
	}
	if b.closed {
		return fmt.Errorf("%s %s: %w", op, d.msg.ID, bus.ErrClosed)
	}
	d.settled = true
	mine := !s.closed && s.held[p.seq] == p
	if mine {
		delete(s.held, p.seq)
		s.credits++
		s.wakeUp()
	}
	if g.pending[p.seq] != p {
		return nil // acked already by another holder, or the group was deleted
	}
	if ack {
		delete(g.pending, p.seq)
		delete(g.orphans, p.seq)
		g.t.dirty = true
		b.logLazy(func(buf []byte) []byte {
			buf = append(buf, recAck)
			buf = putUvarint(buf, g.id)
			return putUvarint(buf, p.seq)
		})
		return nil
	}
	switch {
	case mine && p.sub == s:
		s.redeliver = append([]*pend{p}, s.redeliver...)
	case p.sub == nil:
		p.since = time.Time{} // an orphan already: claimable at once
		g.wakeAll()
	}
	return nil
}

func sortLags(l []bus.GroupLag) {
	sort.Slice(l, func(i, j int) bool { return l[i].Group < l[j].Group })
}

func checkName(kind, name string) error { return bus.CheckName(kind, name) }

func checkSubscribe(topic, group string, o bus.SubscribeOptions) error {
	return bus.CheckSubscribe(topic, group, o)
}
