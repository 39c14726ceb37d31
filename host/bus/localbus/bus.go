package localbus

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/host/embedded/appendlog"
)

// Bus is the embedded bus. Safe for concurrent use.
type Bus struct {
	dir  string
	opts Options
	alog *appendlog.Log

	mu        sync.Mutex
	topics    map[string]*topic
	topicByID map[uint64]*topic
	groupByID map[uint64]*group
	nextID    uint64 // next topic or group id
	backlog   int64  // bytes of the messages kept
	closed    bool
	ioErr     error // sticky: the log failed
	logDone   bool  // the log is closed: nothing more is written

	// The log's side, under mu.
	scratch    []byte                       // the record being framed
	cur        *batch                       // the batch of the group commit being filled
	batches    map[*appendlog.Commit]*batch // batches not yet committed
	last       *appendlog.Commit            // the latest commit appended to
	compacting *appendlog.Commit            // a Rewrite not yet committed

	stopTrim  chan struct{}
	trimDone  chan struct{}
	closeOnce sync.Once
}

var (
	_ bus.Bus = (*Bus)(nil)
)

// Open opens (creating when missing) the bus in dir and replays its log. The host passes
// DATA/bus. Only one Bus may have a directory open at a time.
func Open(dir string, opts Options) (*Bus, error) {
	opts = opts.WithDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	if dir == "" {
		return nil, fmt.Errorf("open: %w: the directory is empty; pass the data directory's bus folder", ErrInvalidOptions)
	}
	b := &Bus{
		dir: dir, opts: opts,
		topics: map[string]*topic{}, topicByID: map[uint64]*topic{}, groupByID: map[uint64]*group{},
		nextID: 1, batches: map[*appendlog.Commit]*batch{},
		stopTrim: make(chan struct{}), trimDone: make(chan struct{}),
	}
	if err := b.openLog(); err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	// Every pending delivery of the previous run belongs to a consumer that is gone: a consumer
	// of the same name gets it back when it subscribes, any other once ClaimAfter has passed.
	now := time.Now()
	for _, t := range b.topics {
		for _, g := range t.groups {
			for _, p := range g.orphans {
				if p.count > 0 {
					p.since = now
				} // else never handed out: any member may take it at once
			}
		}
	}
	go b.trimLoop()
	return b, nil
}

// Features: persistent in its directory; one process only.
func (b *Bus) Features() bus.Features { return bus.Features{Persistent: true, Shared: false} }

// Publish appends the messages to the topic and returns their IDs (the topic's sequence
// numbers, in decimal) once they are on disk.
func (b *Bus) Publish(ctx context.Context, topicName string, msgs ...*bus.Message) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	if err := checkName("topic", topicName); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	var size int64
	for i, m := range msgs {
		if m == nil {
			return nil, fmt.Errorf("publish to %q: %w: message %d is nil", topicName, bus.ErrInvalid, i)
		}
		size += int64(len(m.Payload))
		for k, v := range m.Headers {
			size += int64(len(k) + len(v))
		}
	}
	if len(msgs) == 0 {
		return []string{}, nil
	}
	b.mu.Lock()
	if err := b.usable(); err != nil {
		b.mu.Unlock()
		return nil, fmt.Errorf("publish to %q: %w", topicName, err)
	}
	if b.backlog+size > b.opts.MaxBacklogBytes {
		b.mu.Unlock()
		return nil, fmt.Errorf("publish to %q: %w: %w: %d bytes of unacknowledged messages kept (MaxBacklogBytes %d); retry when consumers catch up",
			topicName, ErrBacklogFull, bus.ErrUnavailable, b.backlog, b.opts.MaxBacklogBytes)
	}
	t := b.topicLocked(topicName)
	ids := make([]string, len(msgs))
	var bt *batch
	for i, in := range msgs {
		var headers map[string]string
		if len(in.Headers) > 0 {
			headers = make(map[string]string, len(in.Headers))
			for k, v := range in.Headers {
				headers[k] = v
			}
		}
		m := b.addMessage(t, append([]byte(nil), in.Payload...), headers)
		bt = b.log(func(buf []byte) []byte { return encPublish(buf, t, m) })
		ids[i] = strconv.FormatUint(m.seq, 10)
	}
	bt.published[t] = t.next
	b.mu.Unlock()
	if err := b.wait(ctx, bt.c); err != nil {
		return nil, fmt.Errorf("publish to %q: %w", topicName, err)
	}
	return ids, nil
}

// usable says why the bus cannot take a write, if it cannot. Under mu.
func (b *Bus) usable() error {
	if b.closed {
		return bus.ErrClosed
	}
	if b.ioErr != nil {
		return fmt.Errorf("%w: %w", bus.ErrUnavailable, b.ioErr)
	}
	return nil
}

// topicLocked returns the topic, creating (and logging) it when new. Under mu.
func (b *Bus) topicLocked(name string) *topic {
	if t := b.topics[name]; t != nil {
		return t
	}
	t := b.addTopic(b.nextID, name)
	b.log(func(buf []byte) []byte { return encTopic(buf, t) })
	return t
}

// Subscribe starts a consumer of the group, creating the group (durably) when new.
func (b *Bus) Subscribe(ctx context.Context, topicName, groupName string, o bus.SubscribeOptions) (bus.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	if err := checkSubscribe(topicName, groupName, o); err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	prefetch := o.Prefetch
	if prefetch == 0 {
		prefetch = 64
	}
	claimAfter := o.ClaimAfter
	if claimAfter == 0 {
		claimAfter = b.opts.DefaultClaimAfter
	}
	b.mu.Lock()
	if err := b.usable(); err != nil {
		b.mu.Unlock()
		return nil, fmt.Errorf("subscribe to %q/%q: %w", topicName, groupName, err)
	}
	t := b.topicLocked(topicName)
	g := t.groups[groupName]
	if g == nil {
		next := t.first
		// SkipBacklog skips (and reports) what is already on the topic below.
		if o.Start == bus.StartNewest && !o.SkipBacklog {
			next = t.next
		}
		g = b.addGroup(t, b.nextID, groupName, next)
		b.log(func(buf []byte) []byte { return encGroup(buf, g) })
	}
	if g.subs[o.Consumer] != nil {
		b.mu.Unlock()
		return nil, fmt.Errorf("subscribe to %q/%q: %w: consumer %q is already subscribed to this group on this bus; give each subscription its own consumer name",
			topicName, groupName, bus.ErrInvalid, o.Consumer)
	}
	var skipped []*bus.Message
	if o.SkipBacklog && g.next < t.next && len(g.subs) == 0 {
		if o.Skipped != nil {
			for seq := g.next; seq < t.next; seq++ {
				if m := t.message(seq); m != nil {
					skipped = append(skipped, &bus.Message{ID: strconv.FormatUint(seq, 10), Payload: append([]byte(nil), m.payload...), Headers: maps.Clone(m.headers)})
				}
			}
		}
		g.next = t.next
		b.log(func(buf []byte) []byte {
			buf = append(buf, recSetNext)
			buf = putUvarint(buf, g.id)
			return putUvarint(buf, g.next)
		})
	}
	s := newSub(b, g, o.Consumer, prefetch, claimAfter)
	g.subs[o.Consumer] = s
	g.adopt(s)
	// The group (or the topic, or its new cursor) must survive a crash once Subscribe
	// returned: messages published from now on are kept for it.
	pending := b.pending()
	b.mu.Unlock()
	if len(skipped) > 0 {
		o.Skipped(skipped) // outside the lock: the caller may take its time recording them
	}
	go s.run()
	if pending != nil {
		b.alog.Kick()
		if err := b.wait(ctx, pending); err != nil {
			_ = s.Close()
			return nil, fmt.Errorf("subscribe to %q/%q: %w", topicName, groupName, err)
		}
	}
	return s, nil
}

// Lag reports each group's pending and undelivered messages, by group name.
func (b *Bus) Lag(ctx context.Context, topicName string) ([]bus.GroupLag, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("lag: %w", err)
	}
	if err := checkName("topic", topicName); err != nil {
		return nil, fmt.Errorf("lag: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("lag of %q: %w", topicName, bus.ErrClosed)
	}
	t := b.topics[topicName]
	if t == nil {
		return []bus.GroupLag{}, nil
	}
	out := make([]bus.GroupLag, 0, len(t.groups))
	for _, g := range t.groups {
		var undelivered int64
		if t.durable > g.next {
			undelivered = int64(t.durable - g.next)
		}
		pending := int64(len(g.pending))
		for _, p := range g.orphans {
			if p.count == 0 {
				// Taken by a subscription that closed before handing it over: not delivered.
				pending--
				undelivered++
			}
		}
		out = append(out, bus.GroupLag{Group: g.name, Pending: pending, Undelivered: undelivered, Consumers: g.consumers()})
	}
	sortLags(out)
	return out, nil
}

// DeleteGroup removes the group; its subscriptions on this bus end.
func (b *Bus) DeleteGroup(ctx context.Context, topicName, groupName string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete group: %w", err)
	}
	if err := checkName("topic", topicName); err != nil {
		return fmt.Errorf("delete group: %w", err)
	}
	if err := checkName("group", groupName); err != nil {
		return fmt.Errorf("delete group: %w", err)
	}
	b.mu.Lock()
	if err := b.usable(); err != nil {
		b.mu.Unlock()
		return fmt.Errorf("delete group %q/%q: %w", topicName, groupName, err)
	}
	t := b.topics[topicName]
	var g *group
	if t != nil {
		g = t.groups[groupName]
	}
	if g == nil {
		b.mu.Unlock()
		return nil
	}
	subs := make([]*sub, 0, len(g.subs))
	for _, s := range g.subs {
		subs = append(subs, s)
	}
	b.removeGroup(g)
	bt := b.log(func(buf []byte) []byte {
		buf = append(buf, recDelGroup)
		return putUvarint(buf, g.id)
	})
	b.mu.Unlock()
	for _, s := range subs {
		_ = s.Close()
	}
	if err := b.wait(ctx, bt.c); err != nil {
		return fmt.Errorf("delete group %q/%q: %w", topicName, groupName, err)
	}
	return nil
}

// Len is the number of messages kept on the topic (bustest.Inspector).
func (b *Bus) Len(ctx context.Context, topicName string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("len: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, fmt.Errorf("len of %q: %w", topicName, bus.ErrClosed)
	}
	t := b.topics[topicName]
	if t == nil {
		return 0, nil
	}
	return int64(len(t.msgs)), nil
}

// Trim drops, now, what every group of the topic acknowledged and returns how many messages it
// dropped (bustest.Inspector). The bus also does this every TrimInterval.
func (b *Bus) Trim(ctx context.Context, topicName string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("trim: %w", err)
	}
	b.mu.Lock()
	if err := b.usable(); err != nil {
		b.mu.Unlock()
		return 0, fmt.Errorf("trim %q: %w", topicName, err)
	}
	t := b.topics[topicName]
	if t == nil {
		b.mu.Unlock()
		return 0, nil
	}
	n := b.trim(t)
	b.mu.Unlock()
	return n, nil
}

func (b *Bus) trimLoop() {
	defer close(b.trimDone)
	if b.opts.TrimInterval < 0 {
		<-b.stopTrim
		return
	}
	tick := time.NewTicker(b.opts.TrimInterval)
	defer tick.Stop()
	for {
		select {
		case <-b.stopTrim:
			return
		case <-tick.C:
		}
		b.mu.Lock()
		if b.usable() == nil {
			for _, t := range b.topics {
				if t.dirty {
					b.trim(t)
				}
			}
		}
		b.mu.Unlock()
	}
}

// Close ends every subscription (their deliveries stay pending: a consumer of the same name
// gets them back after the next Open), writes what is left of the log and releases the
// directory. Safe to call twice.
func (b *Bus) Close() error {
	var err error
	b.closeOnce.Do(func() { err = b.shutdown(false) })
	return err
}

// crash stops the bus as kill -9 would: what the committer has not written yet is lost. Tests
// use it to check recovery.
func (b *Bus) crash() {
	b.closeOnce.Do(func() { _ = b.shutdown(true) })
}

func (b *Bus) shutdown(crash bool) error {
	b.mu.Lock()
	b.closed = true
	var subs []*sub
	for _, t := range b.topics {
		for _, g := range t.groups {
			for _, s := range g.subs {
				subs = append(subs, s)
			}
		}
	}
	b.mu.Unlock()
	for _, s := range subs {
		s.stop()
	}
	close(b.stopTrim)
	<-b.trimDone
	var errs []error
	if crash {
		b.alog.Kill()
	} else if err := b.alog.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close: %w: %w", ErrIO, err))
	}
	b.mu.Lock()
	b.logDone = true
	failed := b.ioErr
	b.mu.Unlock()
	if failed != nil && !crash {
		errs = append(errs, fmt.Errorf("close: the log had failed earlier: %w", failed))
	}
	return errors.Join(errs...)
}
