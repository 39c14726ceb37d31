package redisbus

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/host/redisconn"
)

// Bus is the Redis Streams bus. Safe for concurrent use.
type Bus struct {
	opts    Options
	addr    string
	rdb     redis.UniversalClient // commands, pipelines, scripts
	readers redis.UniversalClient // one sticky connection per reader's blocking reads
	direct  redis.UniversalClient // the readers' non-blocking reads
	cluster bool                  // a Redis Cluster: keys tag their topic, readers pick the node
	counter *commandCounter
	maint   *maintainer

	rmu        sync.Mutex
	readerSets map[readerKey][]*reader

	mu      sync.Mutex
	closed  bool
	crashed bool
	subs    map[*sub]struct{}
	// dirty holds the topics whose trim point may have moved since the trimmer last looked:
	// this bus acked, subscribed, skipped a backlog or deleted a group there. Each host trims
	// what it touched, so an idle cluster trims nothing.
	dirty map[string]struct{}

	// The flusher's queues.
	qmu         sync.Mutex
	pubs        []*pubReq
	acks        []ackItem
	acksSending bool // the flusher took acks and has not settled them yet
	kick        chan struct{}
	ackKick     chan struct{}

	stop        chan struct{}
	flusherDone chan struct{}
	trimDone    chan struct{}
	closeOnce   sync.Once
}

var _ bus.Bus = (*Bus)(nil)

// New returns a bus on the Redis that opts name. It does not wait for Redis: with Redis down,
// calls fail with bus.ErrUnavailable and subscriptions wait for it.
func New(opts Options) (*Bus, error) {
	opts = opts.WithDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("new: %w", err)
	}
	cmdOpts, readOpts, directOpts, err := opts.clientOptions()
	if err != nil {
		return nil, fmt.Errorf("new: %w", err)
	}
	b := &Bus{
		opts: opts, addr: cmdOpts.Addr(), cluster: cmdOpts.Kind() == redisconn.Cluster,
		rdb: cmdOpts.NewClient(), readers: readOpts.NewClient(), direct: directOpts.NewClient(),
		counter:    &commandCounter{},
		readerSets: map[readerKey][]*reader{},
		subs:       map[*sub]struct{}{}, dirty: map[string]struct{}{},
		kick: make(chan struct{}, 1), ackKick: make(chan struct{}, 1),
		stop: make(chan struct{}), flusherDone: make(chan struct{}), trimDone: make(chan struct{}),
	}
	b.maint = newMaintainer(b)
	b.rdb.AddHook(b.counter)
	b.direct.AddHook(b.counter)
	if rc, ok := b.readers.(*redis.ClusterClient); ok {
		// The blocking reads go over connections of the node clients (readerConn), which the
		// cluster client's own hooks never see.
		rc.OnNewNode(func(node *redis.Client) { node.AddHook(b.counter) })
	} else {
		b.readers.AddHook(b.counter)
	}
	go b.flushLoop()
	go b.trimLoop()
	return b, nil
}

// Features: as persistent as the Redis server is configured to be (AOF or RDB), and shared by
// every host that uses the same Redis and Prefix.
func (b *Bus) Features() bus.Features { return bus.Features{Persistent: true, Shared: true} }

// key is the topic's stream. On a Redis Cluster the topic is the key's hash tag: every command
// of the bus touches one stream at a time, so each topic may live on its own slot, and the
// topics of many listeners spread over the masters. On one server the key stays as it always
// was (Prefix + topic), so an upgrade finds its streams.
func (b *Bus) key(topic string) string {
	if b.cluster {
		return b.opts.Prefix + "{" + topic + "}"
	}
	return b.opts.Prefix + topic
}

// readerConn returns a connection of its own for a reader's blocking reads of key (and of the
// other keys of its slot), and the client of the server it is on (for CLIENT UNBLOCK): on a
// cluster, the master that holds key's slot.
func (b *Bus) readerConn(ctx context.Context, key string) (*redis.Conn, *redis.Client, error) {
	switch c := b.readers.(type) {
	case *redis.ClusterClient:
		node, err := c.MasterForKey(ctx, key)
		if err != nil {
			return nil, nil, err
		}
		return node.Conn(), node, nil
	case *redis.Client:
		return c.Conn(), c, nil
	}
	return nil, nil, fmt.Errorf("redisbus: unexpected client type %T", b.readers)
}

// readFailed lets the readers' cluster client learn the slots again after a read failed: the
// slot may have moved (MOVED), or its master failed over to a replica.
func (b *Bus) readFailed() {
	for _, c := range []redis.UniversalClient{b.readers, b.direct} {
		if c, ok := c.(*redis.ClusterClient); ok {
			c.ReloadState(context.Background())
		}
	}
}

func (b *Bus) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// markDirty queues topics for the trimmer.
func (b *Bus) markDirty(topics ...string) {
	b.mu.Lock()
	for _, t := range topics {
		b.dirty[t] = struct{}{}
	}
	b.mu.Unlock()
}

// opCtx bounds one round trip by OpTimeout within the caller's context.
func (b *Bus) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.opts.OpTimeout)
}

// Publish adds the messages to the topic's stream (XADD, pipelined with other calls') and
// returns their stream ids once Redis has them.
func (b *Bus) Publish(ctx context.Context, topic string, msgs ...*bus.Message) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	if err := bus.CheckName("topic", topic); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	for i, m := range msgs {
		if m == nil {
			return nil, fmt.Errorf("publish to %q: %w: message %d is nil", topic, bus.ErrInvalid, i)
		}
	}
	if len(msgs) == 0 {
		return []string{}, nil
	}
	if b.isClosed() {
		return nil, fmt.Errorf("publish to %q: %w", topic, bus.ErrClosed)
	}
	req := &pubReq{key: b.key(topic), msgs: msgs, done: make(chan struct{})}
	b.enqueue(req)
	select {
	case <-req.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("publish to %q: %w (the messages may still be published)", topic, ctx.Err())
	}
	if req.err != nil {
		return nil, b.wrap(ctx, fmt.Sprintf("publish to %q", topic), req.err)
	}
	return req.ids, nil
}

// Subscribe creates the group when it does not exist (XGROUP CREATE … MKSTREAM) and starts a
// consumer of it.
func (b *Bus) Subscribe(ctx context.Context, topic, group string, o bus.SubscribeOptions) (bus.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	if err := bus.CheckSubscribe(topic, group, o); err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	op := fmt.Sprintf("subscribe to %q/%q", topic, group)
	s := newSub(b, topic, group, o)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", op, bus.ErrClosed)
	}
	for other := range b.subs {
		if other.topic == topic && other.group == group && other.consumer == o.Consumer {
			b.mu.Unlock()
			return nil, fmt.Errorf("%s: %w: consumer %q is already subscribed to this group on this bus; give each subscription its own consumer name",
				op, bus.ErrInvalid, o.Consumer)
		}
	}
	b.subs[s] = struct{}{}
	b.dirty[topic] = struct{}{}
	b.mu.Unlock()
	ensure := func() error { return b.ensureGroup(ctx, s.key, group, o.Start) }
	if o.SkipBacklog {
		ensure = func() error { return b.skipBacklog(ctx, s.key, group, o) }
	}
	if err := ensure(); err != nil {
		b.forget(s)
		return nil, b.wrap(ctx, op, err)
	}
	if !s.start() {
		return nil, fmt.Errorf("%s: %w", op, bus.ErrClosed)
	}
	return s, nil
}

func (b *Bus) forget(s *sub) {
	b.mu.Lock()
	delete(b.subs, s)
	b.mu.Unlock()
}

// ensureGroup creates the group at its start position unless it exists.
func (b *Bus) ensureGroup(ctx context.Context, key, group string, start bus.StartPosition) error {
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	_, err := b.createGroup(ctx, key, group, start)
	return err
}

// createGroup creates the group at its start position unless it exists, and says whether it
// did.
func (b *Bus) createGroup(ctx context.Context, key, group string, start bus.StartPosition) (bool, error) {
	id := "0"
	if start == bus.StartNewest {
		id = "$"
	}
	err := b.rdb.XGroupCreateMkStream(ctx, key, group, id).Err()
	if isBusyGroup(err) {
		return false, nil
	}
	return err == nil, err
}

// skipBacklog is SkipBacklog: unless another member of the group is live, it moves the group
// past every entry on the stream — a new group too: everything already on the topic arrived
// while no member ran — reporting them to o.Skipped, page by page, and moving the group to the
// last entry reported, so an entry published meanwhile is delivered rather than skipped unseen.
func (b *Bus) skipBacklog(ctx context.Context, key, group string, o bus.SubscribeOptions) error {
	octx, cancel := b.opCtx(ctx)
	defer cancel()
	err := b.rdb.XGroupCreateMkStream(octx, key, group, "0").Err()
	if err != nil && !isBusyGroup(err) {
		return err
	}
	// A member read within three blocking reads is live: a reader is never out of XREADGROUP for
	// longer unless its prefetch is full, and then it is live too — only slower to show it.
	consumers, err := b.rdb.XInfoConsumers(octx, key, group).Result()
	if err != nil {
		return err
	}
	for _, c := range consumers {
		if c.Name != o.Consumer && c.Idle < 3*b.opts.Block {
			return nil
		}
	}
	groups, err := b.rdb.XInfoGroups(octx, key).Result()
	if err != nil {
		return err
	}
	from := ""
	for _, g := range groups {
		if g.Name == group {
			from = g.LastDeliveredID
		}
	}
	if from == "" {
		return fmt.Errorf("group %s of %s vanished while subscribing", group, key)
	}
	last := from
	for {
		page, err := b.rdb.XRangeN(octx, key, "("+last, "+", 1000).Result()
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		last = page[len(page)-1].ID
		if o.Skipped != nil {
			msgs := make([]*bus.Message, len(page))
			for i, x := range page {
				msgs[i] = decode(x)
			}
			o.Skipped(msgs)
		}
	}
	if last == from {
		return nil
	}
	return b.rdb.XGroupSetID(octx, key, group, last).Err()
}

func isBusyGroup(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && len(rerr.Error()) >= 9 && rerr.Error()[:9] == "BUSYGROUP"
}

// Lag reports each group's pending entries and the entries not yet delivered to it (XINFO
// GROUPS), after sending the acks still queued.
func (b *Bus) Lag(ctx context.Context, topic string) ([]bus.GroupLag, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("lag: %w", err)
	}
	if err := bus.CheckName("topic", topic); err != nil {
		return nil, fmt.Errorf("lag: %w", err)
	}
	op := fmt.Sprintf("lag of %q", topic)
	if b.isClosed() {
		return nil, fmt.Errorf("%s: %w", op, bus.ErrClosed)
	}
	if err := b.flushAcks(ctx); err != nil {
		return nil, b.wrap(ctx, op, err)
	}
	octx, cancel := b.opCtx(ctx)
	defer cancel()
	key := b.key(topic)
	groups, err := b.rdb.XInfoGroups(octx, key).Result()
	if isNoSuchKey(err) {
		return []bus.GroupLag{}, nil
	}
	if err != nil {
		return nil, b.wrap(ctx, op, err)
	}
	out := make([]bus.GroupLag, 0, len(groups))
	for _, g := range groups {
		lag := g.Lag
		if lag < 0 {
			// Redis cannot tell (entries deleted in the middle, or a server older than 7.0):
			// count what follows the group's last delivered entry.
			n, err := b.rdb.XRangeN(octx, key, "("+g.LastDeliveredID, "+", 1<<20).Result()
			if err != nil {
				return nil, b.wrap(ctx, op, err)
			}
			lag = int64(len(n))
		}
		out = append(out, bus.GroupLag{Group: g.Name, Pending: g.Pending, Undelivered: lag, Consumers: int(g.Consumers)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out, nil
}

// DeleteGroup ends this bus's subscriptions of the group and destroys it (XGROUP DESTROY).
// Subscriptions of other hosts recreate it unless they stop too.
func (b *Bus) DeleteGroup(ctx context.Context, topic, group string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete group: %w", err)
	}
	if err := bus.CheckName("topic", topic); err != nil {
		return fmt.Errorf("delete group: %w", err)
	}
	if err := bus.CheckName("group", group); err != nil {
		return fmt.Errorf("delete group: %w", err)
	}
	op := fmt.Sprintf("delete group %q/%q", topic, group)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return fmt.Errorf("%s: %w", op, bus.ErrClosed)
	}
	var subs []*sub
	for s := range b.subs {
		if s.topic == topic && s.group == group {
			subs = append(subs, s)
			s.deleted.Store(true)
		}
	}
	b.dirty[topic] = struct{}{}
	b.mu.Unlock()
	for _, s := range subs {
		_ = s.Close()
	}
	octx, cancel := b.opCtx(ctx)
	defer cancel()
	if err := b.rdb.XGroupDestroy(octx, b.key(topic), group).Err(); err != nil && !isNoSuchKey(err) {
		return b.wrap(ctx, op, err)
	}
	return nil
}

// Len is the number of entries on the topic's stream (XLEN; bustest.Inspector).
func (b *Bus) Len(ctx context.Context, topic string) (int64, error) {
	if b.isClosed() {
		return 0, fmt.Errorf("len of %q: %w", topic, bus.ErrClosed)
	}
	octx, cancel := b.opCtx(ctx)
	defer cancel()
	n, err := b.rdb.XLen(octx, b.key(topic)).Result()
	return n, b.wrap(ctx, fmt.Sprintf("len of %q", topic), err)
}

// Trim removes, now, the entries every group of the topic has acknowledged and returns how many
// it removed (bustest.Inspector). The bus does this every TrimInterval for the topics it touched.
func (b *Bus) Trim(ctx context.Context, topic string) (int64, error) {
	op := fmt.Sprintf("trim %q", topic)
	if b.isClosed() {
		return 0, fmt.Errorf("%s: %w", op, bus.ErrClosed)
	}
	if err := b.flushAcks(ctx); err != nil {
		return 0, b.wrap(ctx, op, err)
	}
	key := b.key(topic)
	n, err := b.trim(ctx, []string{key})
	return n[key], b.wrap(ctx, op, err)
}

// trim computes, for each key, the lowest id any group still needs and trims below it, in three
// pipelines whatever the number of keys: the groups of every stream (XINFO GROUPS), the first
// pending entry of every group that has some (XPENDING), the trims (XTRIM MINID). Entries only
// move forward between the steps (new entries come after every group's last delivered one; a
// pending entry is only acked or claimed), so the bound stays safe without a script. It
// returns the entries removed by key, and the first error other than a missing stream.
func (b *Bus) trim(ctx context.Context, keys []string) (map[string]int64, error) {
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	out := map[string]int64{}
	var firstErr error
	fail := func(err error) {
		if firstErr == nil {
			firstErr = err
		}
	}
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), b.opts.MaxPipeline)]
		keys = keys[len(chunk):]
		pipe := b.rdb.Pipeline()
		infos := make([]*redis.XInfoGroupsCmd, len(chunk))
		for i, k := range chunk {
			infos[i] = pipe.XInfoGroups(ctx, k)
		}
		_, _ = pipe.Exec(ctx)
		type pend struct {
			key   string
			floor *string
			cmd   *redis.XPendingCmd
		}
		floors := map[string]string{}
		var pends []pend
		pipe = b.rdb.Pipeline()
		for i, k := range chunk {
			groups, err := infos[i].Result()
			if err != nil {
				if !isNoSuchKey(err) {
					fail(err)
				}
				continue
			}
			if len(groups) == 0 {
				continue // keep everything for the group to come
			}
			low := ""
			for _, g := range groups {
				floor := after(g.LastDeliveredID)
				if low == "" || lessID(floor, low) {
					low = floor
				}
				if g.Pending > 0 {
					pends = append(pends, pend{key: k, cmd: pipe.XPending(ctx, k, g.Name)})
				}
			}
			floors[k] = low
		}
		if len(pends) > 0 {
			_, _ = pipe.Exec(ctx)
			for _, p := range pends {
				sum, err := p.cmd.Result()
				if err != nil {
					fail(err)
					delete(floors, p.key) // not known: leave this stream for the next round
					continue
				}
				if low, ok := floors[p.key]; ok && sum.Count > 0 && lessID(sum.Lower, low) {
					floors[p.key] = sum.Lower
				}
			}
		}
		if len(floors) == 0 {
			continue
		}
		pipe = b.rdb.Pipeline()
		trims := map[string]*redis.IntCmd{}
		for k, low := range floors {
			trims[k] = pipe.XTrimMinID(ctx, k, low)
		}
		_, _ = pipe.Exec(ctx)
		for k, c := range trims {
			n, err := c.Result()
			if err != nil {
				fail(err)
				continue
			}
			out[k] = n
		}
	}
	return out, firstErr
}

func (b *Bus) trimLoop() {
	defer close(b.trimDone)
	if b.opts.TrimInterval < 0 {
		<-b.stop
		return
	}
	tick := time.NewTicker(b.opts.TrimInterval)
	defer tick.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-tick.C:
		}
		b.mu.Lock()
		topics := b.dirty
		b.dirty = map[string]struct{}{}
		b.mu.Unlock()
		if len(topics) == 0 {
			continue
		}
		keys := make([]string, 0, len(topics))
		for t := range topics {
			keys = append(keys, b.key(t))
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-b.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		err := b.flushAcks(ctx)
		if err == nil {
			_, err = b.trim(ctx, keys)
		}
		if err != nil {
			// Look again next round (Redis down, or stopping).
			b.mu.Lock()
			for t := range topics {
				b.dirty[t] = struct{}{}
			}
			b.mu.Unlock()
			if !unavailable(err) && ctx.Err() == nil {
				b.opts.Logger.Warn("redisbus: trim failed", "err", err)
			}
		}
		cancel()
	}
}

// Close ends every subscription (what they hold unacked stays pending for the group), sends the
// queued acks and closes the connections. Safe to call twice.
func (b *Bus) Close() error {
	var err error
	b.closeOnce.Do(func() { err = b.shutdown(false) })
	return err
}

// crash stops the bus as kill -9 would: queued acks are dropped, nothing is released, no
// heartbeat runs any more. Tests use it.
func (b *Bus) crash() {
	b.closeOnce.Do(func() { _ = b.shutdown(true) })
}

func (b *Bus) shutdown(crash bool) error {
	b.mu.Lock()
	b.closed = true // refuse new work; the flusher still sends what the subscriptions flush
	b.crashed = crash
	subs := make([]*sub, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	// Readers first: every read ends at once, and closing the subscriptions waits for none.
	b.stopReaders()
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = s.Close()
		}()
	}
	wg.Wait()
	close(b.stop)
	<-b.flusherDone
	<-b.trimDone
	return errors.Join(b.rdb.Close(), b.readers.Close(), b.direct.Close())
}
