package redisbus

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// maintainer runs, for every subscription of the bus, the heartbeat that keeps the entries it
// holds from being claimed and the claim of entries dead consumers left. Subscriptions with the
// same heartbeat interval (those of one ClaimAfter: every subscription of an engine) share one
// ticker, and each round sends its commands in one pipeline: an idle host with thousands of
// subscriptions wakes once per interval, not once per subscription.
type maintainer struct {
	b       *Bus
	mu      sync.Mutex
	classes map[time.Duration]*beatClass
	// round is held while a round runs; remove waits for it, so no claim pushes into a
	// subscription after it left.
	round sync.Mutex
}

// beatClass is the subscriptions of one heartbeat interval and their ticker's goroutine.
type beatClass struct {
	every time.Duration
	subs  map[*sub]struct{}
	stop  chan struct{}
}

func newMaintainer(b *Bus) *maintainer {
	return &maintainer{b: b, classes: map[time.Duration]*beatClass{}}
}

func (m *maintainer) add(s *sub) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.classes[s.heartbeat]
	if c == nil {
		c = &beatClass{every: s.heartbeat, subs: map[*sub]struct{}{}, stop: make(chan struct{})}
		m.classes[s.heartbeat] = c
		go m.run(c)
	}
	c.subs[s] = struct{}{}
}

// remove takes s out and returns once no round that may include it runs.
func (m *maintainer) remove(s *sub) {
	m.mu.Lock()
	if c := m.classes[s.heartbeat]; c != nil {
		delete(c.subs, s)
		if len(c.subs) == 0 {
			delete(m.classes, s.heartbeat)
			close(c.stop)
		}
	}
	m.mu.Unlock()
	m.round.Lock()
	m.round.Unlock() //nolint:staticcheck // an empty critical section: waits for the round under way
}

func (m *maintainer) run(c *beatClass) {
	tick := time.NewTicker(c.every)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
		m.beat(c)
	}
}

// beat is one round: heartbeats of what the class's subscriptions hold, then the claims due.
func (m *maintainer) beat(c *beatClass) {
	m.mu.Lock()
	subs := make([]*sub, 0, len(c.subs))
	for s := range c.subs {
		subs = append(subs, s)
	}
	m.mu.Unlock()
	m.round.Lock()
	defer m.round.Unlock()
	b := m.b
	ctx, cancel := b.opCtx(context.Background())
	defer cancel()

	var beats []touchReq
	for _, s := range subs {
		s.mu.Lock()
		if len(s.held) > 0 && !s.gone {
			ids := make([]string, 0, len(s.held))
			for id := range s.held {
				ids = append(ids, id)
			}
			beats = append(beats, touchReq{key: s.key, group: s.group, consumer: s.consumer, ids: ids})
		}
		s.mu.Unlock()
	}
	if len(beats) > 0 {
		b.touchMany(ctx, beats, -1, -1)
	}

	now := time.Now()
	type claim struct {
		s   *sub
		cmd *redis.XAutoClaimCmd
	}
	var claims []claim
	pipe := b.rdb.Pipeline()
	for _, s := range subs {
		if s.claimAfter < 0 || now.Sub(s.lastClaim) < s.claimE || !s.historyDone.Load() || s.closingNow() {
			continue
		}
		s.lastClaim = now
		if n := s.free(); n > 0 {
			claims = append(claims, claim{s: s, cmd: pipe.XAutoClaim(ctx, &redis.XAutoClaimArgs{
				Stream: s.key, Group: s.group, Consumer: s.consumer, MinIdle: s.claimAfter, Start: s.claimCursor, Count: int64(n),
			})})
		}
	}
	if len(claims) == 0 {
		return
	}
	_, _ = pipe.Exec(ctx)
	var reads []pendingRead
	for _, c := range claims {
		msgs, next, err := c.cmd.Result()
		if err != nil {
			continue // Redis down, or the group gone: the reader deals with both
		}
		c.s.claimCursor = next
		if len(msgs) > 0 {
			reads = append(reads, pendingRead{s: c.s, msgs: msgs})
		}
	}
	b.pushPending(reads)
}
