package redisbus

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// readMode says how a subscription's entries are read; it moves with what the reads find.
type readMode int

const (
	// modeHistory: the consumer's own pending entries are read back first, from cursor (a host
	// restarting under its id gets them at once; after a lost reply, what it delivered).
	modeHistory readMode = iota
	// modeDirect: the stream may hold more than the last read brought (a backlog, or the
	// subscription ran out of credit): non-blocking reads take as many entries as it has room
	// for whenever it has some.
	modeDirect
	// modeShared: the stream was drained; the subscription waits in its reader's blocking read.
	modeShared
)

// readerKey names the subscriptions one XREADGROUP may read together: one group and consumer,
// and on a Redis Cluster one hash slot (a multi-key command may not span slots, CROSSSLOT). Hot
// readers (few streams, those that bring entries) and cold ones (many idle streams) are apart.
type readerKey struct {
	group, consumer string
	slot            int // -1 on one server
	hot             bool
}

// readerKeyOf is the key of the readers of s in the given tier.
func (b *Bus) readerKeyOf(s *sub, hot bool) readerKey {
	k := readerKey{group: s.group, consumer: s.consumer, slot: -1, hot: hot}
	if b.cluster {
		k.slot = keySlot(s.key)
	}
	return k
}

// capOf is how many streams a reader of the tier reads.
func (b *Bus) capOf(hot bool) int {
	if hot {
		return b.opts.HotStreams
	}
	return b.opts.ReadStreams
}

// reader reads the streams of up to Options.ReadStreams (a cold reader) or Options.HotStreams
// (a hot one) subscriptions of one group and consumer. Two goroutines serve it:
//   - the blocking loop holds one connection of its own and waits in one
//     XREADGROUP … COUNT n BLOCK t STREAMS k1 … kn > … > over every subscription whose stream
//     was drained and that has credit (n is the least credit among them, so none gets more
//     than its Prefetch allows); a subscription out of credit is left out, and one that got n
//     entries may have more: both move to the direct loop;
//   - the direct loop serves, with non-blocking reads on a small shared pool, the
//     subscriptions whose own pending entries are read back and those with a backlog, as
//     their credit comes back (an ack wakes it); a read that drains a stream hands its
//     subscription back to the blocking loop, ending the blocking read in flight with CLIENT
//     UNBLOCK so the next one includes it.
//
// So an idle host holds one connection per reader whatever the number of listeners, and a busy
// subscription costs the reads it cost with a connection of its own: one per credit refill.
//
// Redis blocks and wakes a read for every stream it names, so each entry that wakes a read of
// hundreds of streams costs hundreds of times the work of one: a subscription whose stream
// brings entries moves from its cold reader to a hot one of a few streams (the cold read it was
// in ended with the entries anyway), and back after HotFor without any.
type reader struct {
	b   *Bus
	key readerKey
	// anyKey is a stream key of the reader, for finding its node on a cluster (all of its
	// streams share one slot).
	anyKey string

	wake       chan struct{} // the blocking loop should choose again
	directWake chan struct{} // the direct loop should look for work
	stop       chan struct{}
	loops      sync.WaitGroup

	clientID atomic.Int64                 // the blocking connection, for CLIENT UNBLOCK
	node     atomic.Pointer[redis.Client] // the server of that connection

	mu      sync.Mutex
	subs    []*sub          // each knows its index (sub.idx)
	byKey   map[string]*sub // the subscriptions by stream key, for the replies
	stopped bool
	// blocking says a blocking read is in flight (its subscriptions have inBlock set);
	// blockEnd is closed once it ended and its entries were pushed. The same for the direct
	// loop's read.
	blocking     bool
	blockEnd     chan struct{}
	interrupting chan struct{} // the blockEnd an unblocker works on already
	directing    bool
	directEnd    chan struct{}
}

func newReader(b *Bus, key readerKey, anyKey string) *reader {
	return &reader{
		b: b, key: key, anyKey: anyKey,
		wake: make(chan struct{}, 1), directWake: make(chan struct{}, 1), stop: make(chan struct{}),
		byKey: map[string]*sub{},
	}
}

func (r *reader) start() {
	r.loops.Add(2)
	go r.blockLoop()
	go r.directLoop()
}

// shutdown ends both loops; the read in flight ends at once. The caller set stopped.
func (r *reader) shutdown() {
	close(r.stop)
	r.mu.Lock()
	r.interruptLocked()
	r.mu.Unlock()
	r.loops.Wait()
}

// attach adds s to a cold reader of its group and consumer (and slot) with room, or to a new
// one: it starts by reading its pending entries there.
func (b *Bus) attach(s *sub) {
	b.rmu.Lock()
	r := b.joinLocked(s, false)
	b.rmu.Unlock()
	signal(r.directWake)
}

// joinLocked adds s to a reader of the tier with room, or to a new one, and returns it. b.rmu
// held.
func (b *Bus) joinLocked(s *sub, hot bool) *reader {
	k := b.readerKeyOf(s, hot)
	var r *reader
	for _, x := range b.readerSets[k] {
		x.mu.Lock()
		if !x.stopped && len(x.subs) < b.capOf(hot) {
			r = x
		}
		x.mu.Unlock()
		if r != nil {
			break
		}
	}
	if r == nil {
		r = newReader(b, k, s.key)
		b.readerSets[k] = append(b.readerSets[k], r)
		r.start()
	}
	s.mu.Lock()
	s.r = r
	s.mu.Unlock()
	r.mu.Lock()
	s.idx = len(r.subs)
	r.subs = append(r.subs, s)
	r.byKey[s.key] = s
	r.mu.Unlock()
	return r
}

// leaveLocked takes s out of r's lists; it reports whether r is left empty, in which case it
// is marked stopped and out of the registry (the caller shuts it down, never from one of its
// own loops). b.rmu and r.mu held.
func (b *Bus) leaveLocked(r *reader, s *sub) (empty bool) {
	last := r.subs[len(r.subs)-1]
	r.subs[s.idx], last.idx = last, s.idx
	r.subs[len(r.subs)-1] = nil
	r.subs = r.subs[:len(r.subs)-1]
	delete(r.byKey, s.key)
	if len(r.subs) > 0 || r.stopped {
		return false
	}
	r.stopped = true
	set := b.readerSets[r.key]
	for i, x := range set {
		if x == r {
			set = append(set[:i], set[i+1:]...)
			break
		}
	}
	if len(set) == 0 {
		delete(b.readerSets, r.key)
	} else {
		b.readerSets[r.key] = set
	}
	return true
}

// move takes subscriptions of r that wait in no read (between two reads of r's blocking loop,
// which calls it) to a reader of the other tier, where they join its blocking read at once.
// Those closing, or in a read of r's direct loop, stay.
func (b *Bus) move(r *reader, subs []*sub, hot bool) {
	if len(subs) == 0 {
		return
	}
	b.rmu.Lock()
	r.mu.Lock()
	var moved []*sub
	empty := false
	for _, s := range subs {
		s.mu.Lock()
		ok := !s.gone && s.mode == modeShared
		s.mu.Unlock()
		if !ok || s.inBlock || s.inDirect || s.idx >= len(r.subs) || r.subs[s.idx] != s {
			continue
		}
		empty = b.leaveLocked(r, s) || empty
		moved = append(moved, s)
	}
	r.mu.Unlock()
	targets := map[*reader]bool{}
	for _, s := range moved {
		targets[b.joinLocked(s, hot)] = true
	}
	b.rmu.Unlock()
	for t := range targets {
		t.kickBlock()
	}
	if empty {
		go r.shutdown()
	}
}

// detach takes s out of its reader and returns once no read of it is in flight: what such a
// read brought is pushed to s by then. A reader left empty stops.
func (b *Bus) detach(s *sub) {
	var r *reader
	for {
		// s may move between tiers until it is gone (set before detach): find where it is.
		s.mu.Lock()
		r = s.r
		s.mu.Unlock()
		if r == nil {
			return
		}
		b.rmu.Lock()
		r.mu.Lock()
		if s.idx < len(r.subs) && r.subs[s.idx] == s {
			break
		}
		r.mu.Unlock()
		b.rmu.Unlock()
	}
	var waits []chan struct{}
	if s.inBlock {
		waits = append(waits, r.blockEnd)
		r.interruptLocked()
	}
	if s.inDirect {
		waits = append(waits, r.directEnd)
	}
	empty := b.leaveLocked(r, s)
	r.mu.Unlock()
	b.rmu.Unlock()
	for _, w := range waits {
		<-w
	}
	if empty {
		r.shutdown()
	}
}

// stopReaders ends every reader (the bus is closing): the subscriptions' Close then waits for
// no read.
func (b *Bus) stopReaders() {
	b.rmu.Lock()
	var all []*reader
	for _, set := range b.readerSets {
		for _, r := range set {
			r.mu.Lock()
			r.stopped = true
			r.mu.Unlock()
			all = append(all, r)
		}
	}
	b.readerSets = map[readerKey][]*reader{}
	b.rmu.Unlock()
	var wg sync.WaitGroup
	for _, r := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.shutdown()
		}()
	}
	wg.Wait()
}

// interruptLocked ends the blocking read in flight (CLIENT UNBLOCK, sent until it ended: the
// loop may not have sent the read yet); one unblocker per read. r.mu held.
func (r *reader) interruptLocked() {
	end := r.blockEnd
	if !r.blocking || r.interrupting == end {
		return
	}
	r.interrupting = end
	go func() {
		wait := time.Millisecond
		for {
			if id, node := r.clientID.Load(), r.node.Load(); id != 0 && node != nil {
				ctx, cancel := r.b.opCtx(context.Background())
				_ = node.ClientUnblock(ctx, id).Err()
				cancel()
			}
			select {
			case <-end:
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, 50*time.Millisecond)
		}
	}()
}

// kickBlock makes the blocking loop choose its streams again: a subscription joined it.
func (r *reader) kickBlock() {
	signal(r.wake)
	r.mu.Lock()
	r.interruptLocked()
	r.mu.Unlock()
}

// sleep waits d unless the reader stops first; it reports whether it may go on.
func (r *reader) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.stop:
		return false
	}
}

func (r *reader) connect() (*redis.Conn, error) {
	ctx, cancel := r.b.opCtx(context.Background())
	defer cancel()
	conn, node, err := r.b.readerConn(ctx, r.anyKey)
	if err != nil {
		return nil, err
	}
	id, err := conn.ClientID(ctx).Result()
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	r.node.Store(node)
	r.clientID.Store(id)
	return conn, nil
}

// chooseShared picks the subscriptions of the next blocking read and its COUNT, and records
// them as the read in flight. Those out of credit move to the direct loop.
func (r *reader) chooseShared() (set []*sub, count int64, stopped bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return nil, 0, true
	}
	moved := false
	for _, s := range r.subs {
		s.mu.Lock()
		if s.mode == modeShared && !s.gone {
			if f := int64(s.freeLocked()); f > 0 {
				set = append(set, s)
				s.inBlock = true
				if count == 0 || f < count {
					count = f
				}
			} else {
				s.mode = modeDirect
				moved = true
			}
		}
		s.mu.Unlock()
	}
	if moved {
		signal(r.directWake)
	}
	if len(set) > 0 {
		r.blocking, r.blockEnd = true, make(chan struct{})
	}
	return set, count, false
}

func (r *reader) endBlock(set []*sub) {
	r.mu.Lock()
	for _, s := range set {
		s.inBlock = false
	}
	r.blocking = false
	close(r.blockEnd)
	r.mu.Unlock()
}

// blockLoop waits for new entries of the drained streams, one blocking read at a time.
func (r *reader) blockLoop() {
	defer r.loops.Done()
	b := r.b
	var conn *redis.Conn
	defer func() {
		if conn != nil {
			_ = conn.Close()
		}
	}()
	var backoff time.Duration
	down := false
	var last []*sub // the subscriptions of the last read, and its arguments
	var args []any
	failed := func(err error) bool {
		if !down {
			b.opts.Logger.Warn("redisbus: reading failed; retrying with backoff",
				"group", r.key.group, "consumer", r.key.consumer, "err", err)
			down = true
		}
		b.readFailed()
		backoff = min(max(2*backoff, 50*time.Millisecond), 2*time.Second)
		return r.sleep(backoff)
	}
	for {
		if conn == nil {
			var err error
			if conn, err = r.connect(); err != nil {
				conn = nil
				select {
				case <-r.stop:
					return
				default:
				}
				if !failed(err) {
					return
				}
				continue
			}
		}
		set, count, stopped := r.chooseShared()
		if stopped {
			return
		}
		if set == nil {
			select {
			case <-r.wake:
				continue
			case <-r.stop:
				return
			}
		}
		if !slices.Equal(set, last) {
			// The command's arguments are kept while the same streams are read, which is most of
			// the time: hundreds of them cost more to box and encode than the read takes.
			args = r.readArgs(set)
			last = set
		}
		args[readCountArg] = count
		cmd := redis.NewXStreamSliceCmd(context.Background(), args...)
		_ = conn.Process(context.Background(), cmd)
		res, err := cmd.Result()
		linger, pause := false, false
		var broken error
		var promote []*sub
		switch {
		case err == nil || errors.Is(err, redis.Nil):
			if down {
				b.opts.Logger.Info("redisbus: reading resumed", "group", r.key.group, "consumer", r.key.consumer)
				down = false
			}
			backoff = 0
			got, _, flowing := r.pushNew(set, res, count, true)
			linger = flowing && b.opts.ReadLinger > 0
			if !r.key.hot {
				promote = got
			}
			if len(res) > 0 {
				// Let the dispatchers hand the entries out before this goroutine encodes the
				// next read over every stream.
				runtime.Gosched()
			}
		case isNoGroup(err) || isStreamGone(err):
			pause = !r.lostGroup(set, err)
		default:
			broken = err
			_ = conn.Close()
			conn = nil
			r.clientID.Store(0)
			// Entries of a read whose reply was lost are in the pending list: read it again.
			r.rereadPending(set)
		}
		r.endBlock(set)
		select {
		case <-r.stop:
			return
		default:
		}
		// Streams that brought entries go to a hot reader (this read ended with them anyway);
		// those of a hot reader quiet for HotFor come back to a cold one.
		if r.key.hot {
			b.move(r, r.stale(), false)
		} else {
			b.move(r, promote, true)
		}
		if broken != nil && !failed(broken) {
			return
		}
		// Messages flowing slower than one read per entry: let some gather.
		if linger && !r.sleep(b.opts.ReadLinger) {
			return
		}
		if pause && !r.sleep(noGroupPause) {
			return
		}
	}
}

// noGroupPause is the wait after a NOGROUP that changed nothing in Redis (a failed XGROUP
// CREATE, or an error not understood), so a reader does not spin on it.
const noGroupPause = 100 * time.Millisecond

// readCountArg is the index of COUNT's value in readArgs.
const readCountArg = 5

// readArgs is XREADGROUP GROUP g c COUNT n BLOCK ms STREAMS k… >… for the subscriptions of a
// blocking read. The readers' connections wait Block longer than OpTimeout for a reply.
func (r *reader) readArgs(set []*sub) []any {
	args := make([]any, 0, 9+2*len(set))
	args = append(args, "xreadgroup", "group", r.key.group, r.key.consumer, "count", int64(0),
		"block", r.b.opts.Block.Milliseconds(), "streams")
	for _, s := range set {
		args = append(args, s.key)
	}
	for range set {
		args = append(args, ">")
	}
	return args
}

// chooseDirect picks the subscriptions of the next non-blocking read, and its COUNT, and
// records them as the read in flight.
func (r *reader) chooseDirect() (hist, fresh []*sub, count int64, stopped bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return nil, nil, 0, true
	}
	for _, s := range r.subs {
		s.mu.Lock()
		if s.mode != modeShared && !s.gone {
			if f := int64(s.freeLocked()); f > 0 {
				if s.mode == modeHistory {
					hist = append(hist, s)
					s.ackedDuringRead = map[string]bool{}
				} else {
					fresh = append(fresh, s)
				}
				s.inDirect = true
				if count == 0 || f < count {
					count = f
				}
			}
		}
		s.mu.Unlock()
	}
	if len(hist)+len(fresh) > 0 {
		r.directing, r.directEnd = true, make(chan struct{})
	}
	return hist, fresh, count, false
}

func (r *reader) endDirect(hist, fresh []*sub) {
	r.mu.Lock()
	for _, s := range hist {
		s.inDirect = false
	}
	for _, s := range fresh {
		s.inDirect = false
	}
	r.directing = false
	close(r.directEnd)
	r.mu.Unlock()
}

// directLoop serves, with non-blocking reads, the subscriptions reading back their pending
// entries and those whose stream may hold more.
func (r *reader) directLoop() {
	defer r.loops.Done()
	b := r.b
	var backoff time.Duration
	down := false
	for {
		hist, fresh, count, stopped := r.chooseDirect()
		if stopped {
			return
		}
		if len(hist)+len(fresh) == 0 {
			select {
			case <-r.directWake:
				continue
			case <-r.stop:
				return
			}
		}
		streams := make([]string, 0, 2*(len(hist)+len(fresh)))
		for _, s := range hist {
			streams = append(streams, s.key)
		}
		for _, s := range fresh {
			streams = append(streams, s.key)
		}
		for _, s := range hist {
			s.mu.Lock()
			streams = append(streams, s.cursor)
			s.mu.Unlock()
		}
		for range fresh {
			streams = append(streams, ">")
		}
		ctx, cancel := b.opCtx(context.Background())
		res, err := b.direct.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: r.key.group, Consumer: r.key.consumer, Streams: streams, Count: count, Block: -1,
		}).Result()
		cancel()
		var joined []*sub
		pause := false
		var broken error
		switch {
		case err == nil || errors.Is(err, redis.Nil):
			if down {
				b.opts.Logger.Info("redisbus: reading resumed", "group", r.key.group, "consumer", r.key.consumer)
				down = false
			}
			backoff = 0
			r.pushHistory(hist, res, count)
			_, joined, _ = r.pushNew(fresh, res, count, false)
		case isNoGroup(err):
			pause = !r.lostGroup(append(hist, fresh...), err)
		default:
			broken = err
			r.rereadPending(fresh)
		}
		for _, s := range hist {
			s.mu.Lock()
			s.ackedDuringRead = nil
			s.mu.Unlock()
		}
		r.endDirect(hist, fresh)
		switch {
		case len(joined) == 0:
		case r.key.hot:
			r.kickBlock()
		default:
			// A stream that brought entries lately is active: it waits in a hot reader's read.
			var active, quiet []*sub
			for _, s := range joined {
				if r.recent(s) {
					active = append(active, s)
				} else {
					quiet = append(quiet, s)
				}
			}
			b.move(r, active, true)
			if len(quiet) > 0 {
				r.kickBlock()
			}
		}
		if pause && !r.sleep(noGroupPause) {
			return
		}
		if broken != nil {
			select {
			case <-r.stop:
				return
			default:
			}
			if !down {
				b.opts.Logger.Warn("redisbus: reading failed; retrying with backoff",
					"group", r.key.group, "consumer", r.key.consumer, "err", broken)
				down = true
			}
			b.readFailed()
			backoff = min(max(2*backoff, 50*time.Millisecond), 2*time.Second)
			if !r.sleep(backoff) {
				return
			}
		}
	}
}

func byStream(res []redis.XStream) map[string][]redis.XMessage {
	m := make(map[string][]redis.XMessage, len(res))
	for _, st := range res {
		m[st.Stream] = append(m[st.Stream], st.Messages...)
	}
	return m
}

// pushNew hands the new entries a read brought to their subscriptions, and returns those that
// got some. A subscription that got count entries may have more: the direct loop reads on (from
// the blocking loop). One of a direct read that got fewer has its stream drained: it joins a
// blocking read (returned in joined). From the blocking loop, linger says the read brought
// entries but none got count: messages flow, slower than a read per entry (ReadLinger).
func (r *reader) pushNew(set []*sub, res []redis.XStream, count int64, blocking bool) (got, joined []*sub, linger bool) {
	if len(set) == 0 {
		return nil, nil, false
	}
	now := time.Now()
	counts := make(map[*sub]int, len(res))
	for _, st := range res {
		if len(st.Messages) == 0 {
			continue
		}
		r.mu.Lock()
		s := r.byKey[st.Stream]
		r.mu.Unlock()
		if s == nil {
			// Detached while the read was in flight (Close waits for what it brought).
			for _, x := range set {
				if x.key == st.Stream {
					s = x
				}
			}
		}
		if s == nil {
			continue
		}
		if counts[s] == 0 {
			got = append(got, s)
		}
		counts[s] += len(st.Messages)
		ds := make([]*delivery, len(st.Messages))
		for i, x := range st.Messages {
			ds[i] = &delivery{s: s, id: x.ID, msg: decode(x), count: 1}
		}
		s.push(ds, false)
		s.mu.Lock()
		s.lastEntry = now
		s.mu.Unlock()
	}
	if blocking {
		full := false
		// Only those that got entries can change: one that got count may have more.
		for _, s := range got {
			if int64(counts[s]) < count {
				continue
			}
			full = true
			s.mu.Lock()
			if s.mode == modeShared {
				s.mode = modeDirect
			}
			s.mu.Unlock()
			signal(r.directWake)
		}
		return got, nil, len(got) > 0 && !full
	}
	// Every subscription of a direct read that got fewer than count has its stream drained.
	for _, s := range set {
		if int64(counts[s]) >= count {
			continue
		}
		s.mu.Lock()
		if s.mode == modeDirect {
			s.mode = modeShared
			joined = append(joined, s)
		}
		s.mu.Unlock()
	}
	return got, joined, false
}

// recent says whether a read brought s entries within HotFor.
func (r *reader) recent(s *sub) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.lastEntry.IsZero() && time.Since(s.lastEntry) <= r.b.opts.HotFor
}

// stale is the subscriptions of a hot reader whose stream brought nothing for HotFor.
func (r *reader) stale() []*sub {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*sub
	for _, s := range r.subs {
		s.mu.Lock()
		if s.mode == modeShared && time.Since(s.lastEntry) > r.b.opts.HotFor {
			out = append(out, s)
		}
		s.mu.Unlock()
	}
	return out
}

// pushHistory hands the consumer's pending entries a read brought back to their subscriptions,
// with their delivery counts. A subscription that got fewer than count has read them all.
func (r *reader) pushHistory(hist []*sub, res []redis.XStream, count int64) {
	if len(hist) == 0 {
		return
	}
	got := byStream(res)
	var reads []pendingRead
	for _, s := range hist {
		msgs := got[s.key]
		s.mu.Lock()
		if len(msgs) > 0 {
			s.cursor = msgs[len(msgs)-1].ID
		}
		done := int64(len(msgs)) < count
		if done {
			s.mode = modeDirect
		}
		s.mu.Unlock()
		if done {
			s.historyDone.Store(true)
		}
		if len(msgs) > 0 {
			reads = append(reads, pendingRead{s: s, msgs: msgs, history: true})
		}
	}
	r.b.pushPending(reads)
}

// rereadPending sends the subscriptions of a failed read back to their pending entries: those
// of a read whose reply was lost are there.
func (r *reader) rereadPending(set []*sub) {
	for _, s := range set {
		s.mu.Lock()
		s.mode, s.cursor = modeHistory, "0"
		s.mu.Unlock()
	}
	if len(set) > 0 {
		signal(r.directWake)
	}
}

// lostGroup handles NOGROUP: the group of one of the read's streams is gone (deleted by another
// host, or Redis lost its data). A subscription whose group this bus deleted, or that is
// closing, is left out from now on; the others recreate their group and read their pending
// entries again. Redis names the stream in its error; if it did not, every stream of the read
// is checked (XGROUP CREATE of an existing group changes nothing). It reports whether the
// next read can differ: a group recreated, or a subscription left out.
func (r *reader) lostGroup(set []*sub, err error) bool {
	b := r.b
	key := noGroupKey(err)
	created := false
	for _, s := range set {
		if key != "" && s.key != key {
			continue
		}
		if s.deleted.Load() || s.closingNow() {
			s.mu.Lock()
			s.gone = true
			s.mu.Unlock()
			created = true // not read again: no need to pause either
			continue
		}
		ctx, cancel := b.opCtx(context.Background())
		made, gerr := b.createGroup(ctx, s.key, s.group, s.startPos)
		cancel()
		if made {
			created = true
			b.opts.Logger.Warn("redisbus: the consumer group is gone (deleted, or Redis lost its data); recreated it",
				"topic", s.topic, "group", s.group)
		}
		if gerr == nil {
			s.mu.Lock()
			s.mode, s.cursor = modeHistory, "0"
			s.mu.Unlock()
		}
	}
	signal(r.directWake)
	return created
}

// noGroupKey is the stream a NOGROUP error names ("NOGROUP No such key 'K' or consumer group
// 'G' in XREADGROUP with GROUP option"), or "".
func noGroupKey(err error) string {
	msg := err.Error()
	_, rest, ok := strings.Cut(msg, "No such key '")
	if !ok {
		return ""
	}
	key, _, ok := strings.Cut(rest, "' or consumer group '")
	if !ok {
		return ""
	}
	return key
}
