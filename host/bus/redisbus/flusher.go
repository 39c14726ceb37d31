package redisbus

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/trellis-run/trellis/host/bus"
)

// pubReq is one Publish call waiting for its XADDs. A request without messages only asks for
// the queued acks to be sent (flushAcks).
type pubReq struct {
	key  string
	msgs []*bus.Message
	ids  []string
	err  error
	done chan struct{}
}

// ackItem is one ack waiting to be sent.
type ackItem struct {
	s     *sub
	key   string
	group string
	id    string
}

func (b *Bus) enqueue(r *pubReq) {
	b.qmu.Lock()
	b.pubs = append(b.pubs, r)
	b.qmu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// queueAck adds an ack; it is sent with the next Publish, at AckBatch acks, or AckInterval later.
func (b *Bus) queueAck(a ackItem) {
	b.qmu.Lock()
	b.acks = append(b.acks, a)
	n := len(b.acks)
	b.qmu.Unlock()
	ch := b.ackKick
	if n >= b.opts.AckBatch {
		ch = b.kick
	}
	select {
	case ch <- struct{}{}:
	default:
	}
}

// flushAcks returns once every ack queued before the call was sent (or failed to be). With none
// queued or on its way it returns at once: Lag, which the engine calls for every listener
// every few seconds, then costs an idle host no round through the flusher.
func (b *Bus) flushAcks(ctx context.Context) error {
	b.qmu.Lock()
	idle := len(b.acks) == 0 && !b.acksSending
	b.qmu.Unlock()
	if idle {
		return nil
	}
	r := &pubReq{done: make(chan struct{})}
	b.enqueue(r)
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flushLoop sends, one pipeline per round trip, every queued Publish and the acks that are
// due. Concurrent publishers thereby share round trips; acks go out every AckInterval (or at
// AckBatch), many ids per XACK.
func (b *Bus) flushLoop() {
	defer close(b.flusherDone)
	ackTimer := time.NewTimer(time.Hour)
	ackTimer.Stop()
	var ackFire <-chan time.Time // non-nil while the timer runs
	retry := time.Duration(0)
	for {
		acksDue := false
		select {
		case <-b.kick:
		case <-b.ackKick:
			if ackFire == nil {
				ackTimer.Reset(max(b.opts.AckInterval, retry))
				ackFire = ackTimer.C
			}
			continue
		case <-ackFire:
			ackFire = nil
			acksDue = true
		case <-b.stop:
			b.mu.Lock()
			crashed := b.crashed
			b.mu.Unlock()
			if !crashed {
				for more, _, _ := b.round(true); more; more, _, _ = b.round(true) {
				}
			}
			b.failQueued()
			return
		}
		more, sent, ackFailed := b.round(acksDue)
		if sent && ackFire != nil {
			// The acks went with this round: the timer starts again with the next ack.
			ackTimer.Stop() // Go 1.23 timers: no stale tick to drain after Stop
			ackFire = nil
		}
		if more {
			signal(b.kick)
		}
		b.qmu.Lock()
		left := len(b.acks)
		b.qmu.Unlock()
		switch {
		case ackFailed:
			// Redis is down: try the acks again later, backing off.
			retry = min(max(2*retry, 50*time.Millisecond), 2*time.Second)
		case sent:
			retry = 0
		}
		if left > 0 {
			signal(b.ackKick)
		}
	}
}

// failQueued answers the publishers still queued when the bus stops.
func (b *Bus) failQueued() {
	b.qmu.Lock()
	pubs := b.pubs
	b.pubs, b.acks = nil, nil
	b.qmu.Unlock()
	for _, r := range pubs {
		r.err = bus.ErrClosed
		close(r.done)
	}
}

// round sends one pipeline and reports whether requests are left for another. Acks go with
// it when they are due (AckInterval passed, AckBatch reached, or a flush asked for them):
// sending them with every Publish would cost one XACK per round trip instead of one per
// AckInterval.
func (b *Bus) round(acksDue bool) (more, sent, ackFailed bool) {
	b.qmu.Lock()
	n, take := 0, 0
	for _, r := range b.pubs {
		if n > 0 && n+len(r.msgs) > b.opts.MaxPipeline {
			break
		}
		if len(r.msgs) == 0 {
			acksDue = true // flushAcks
		}
		n += len(r.msgs)
		take++
	}
	if len(b.acks) >= b.opts.AckBatch {
		acksDue = true
	}
	pubs := b.pubs[:take:take]
	b.pubs = b.pubs[take:]
	if len(b.pubs) == 0 {
		b.pubs = nil
	}
	var acks []ackItem
	if acksDue {
		acks = b.acks
		b.acks = nil
		b.acksSending = len(acks) > 0
	}
	more = len(b.pubs) > 0
	b.qmu.Unlock()
	if len(pubs) == 0 && len(acks) == 0 {
		return more, false, false
	}

	ctx, cancel := context.WithTimeout(context.Background(), b.opts.OpTimeout)
	defer cancel()
	pipe := b.rdb.Pipeline()
	xadds := make([][]*redis.StringCmd, len(pubs))
	for i, r := range pubs {
		for _, m := range r.msgs {
			xadds[i] = append(xadds[i], pipe.XAdd(ctx, &redis.XAddArgs{Stream: r.key, ID: "*", Values: encode(m)}))
		}
	}
	type ackBatch struct {
		items []ackItem
		cmd   *redis.IntCmd
	}
	var batches []*ackBatch
	if len(acks) > 0 {
		byGroup := map[[2]string]*ackBatch{}
		for _, a := range acks {
			k := [2]string{a.key, a.group}
			ab := byGroup[k]
			if ab == nil {
				ab = &ackBatch{}
				byGroup[k] = ab
				batches = append(batches, ab)
			}
			ab.items = append(ab.items, a)
		}
		for _, ab := range batches {
			ids := make([]string, len(ab.items))
			for i, a := range ab.items {
				ids[i] = a.id
			}
			ab.cmd = pipe.XAck(ctx, ab.items[0].key, ab.items[0].group, ids...)
		}
	}
	_, execErr := pipe.Exec(ctx)

	var failed []ackItem
	var acked []string // topics: their trim point may have moved
	for _, ab := range batches {
		if err := ab.cmd.Err(); err != nil {
			if unavailable(err) {
				failed = append(failed, ab.items...)
				continue
			}
			// Any other error (NOGROUP: the group is gone) makes the acks moot.
		}
		for _, a := range ab.items {
			a.s.acked(a.id)
		}
		acked = append(acked, ab.items[0].s.topic)
	}
	if len(acked) > 0 {
		b.markDirty(acked...)
	}
	b.qmu.Lock()
	if len(failed) > 0 {
		b.acks = append(failed, b.acks...)
	}
	b.acksSending = false
	b.qmu.Unlock()
	sent, ackFailed = len(acks) > 0 && len(failed) == 0, len(failed) > 0
	for i, r := range pubs {
		if len(r.msgs) == 0 {
			if len(failed) > 0 {
				r.err = execErr
			}
			close(r.done)
			continue
		}
		r.ids = make([]string, len(r.msgs))
		for j, c := range xadds[i] {
			id, err := c.Result()
			if err != nil {
				r.err, r.ids = err, nil
				break
			}
			r.ids[j] = id
		}
		close(r.done)
	}
	return more, sent, ackFailed
}
