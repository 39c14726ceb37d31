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
// and on a Redis Cluster one hash slot (a multi-key command may not span slots, CROSSSLOT).
type readerKey struct {
	group, consumer string
	slot            int // -1 on one server
}

// reader reads the streams of up to Options.ReadStreams subscriptions of one group and
// consumer. Two goroutines serve it:
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

// attach adds s to a reader of its group and consumer (and slot) with room, or to a new one.
func (b *Bus) attach(s *sub) {
	k := readerKey{group: s.group, consumer: s.consumer, slot: -1}
	if b.cluster {
		k.slot = keySlot(s.key)
	}
	b.rmu.Lock()
	defer b.rmu.Unlock()
	var r *reader
	for _, x := range b.readerSets[k] {
		x.mu.Lock()
		if !x.stopped && len(x.subs) < b.opts.ReadStreams {
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
	s.r = r
	r.mu.Lock()
	s.idx = len(r.subs)
	r.subs = append(r.subs, s)
	r.byKey[s.key] = s
	r.mu.Unlock()
	signal(r.directWake)
}

// detach takes s out of its reader and returns once no read of it is in flight: what such a
// read brought is pushed to s by then. A reader left empty stops.
func (b *Bus) detach(s *sub) {
	r := s.r
	if r == nil {
		return
	}
	r.mu.Lock()
	last := r.subs[len(r.subs)-1]
	r.subs[s.idx], last.idx = last, s.idx
	r.subs[len(r.subs)-1] = nil
	r.subs = r.subs[:len(r.subs)-1]
	delete(r.byKey, s.key)
	var waits []chan struct{}
	if s.inBlock {
		waits = append(waits, r.blockEnd)
		r.interruptLocked()
	}
	if s.inDirect {
		waits = append(waits, r.directEnd)
	}
	r.mu.Unlock()
	for _, w := range waits {
		<-w
	}
	b.rmu.Lock()
	r.mu.Lock()
	empty := len(r.subs) == 0 && !r.stopped
	if empty {
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
	}
	r.mu.Unlock()
	b.rmu.Unlock()
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
		switch {
		case err == nil || errors.Is(err, redis.Nil):
			if down {
				b.opts.Logger.Info("redisbus: reading resumed", "group", r.key.group, "consumer", r.key.consumer)
				down = false
			}
			backoff = 0
			linger = r.pushNew(set, res, count, true) && b.opts.ReadLinger > 0
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
		joined, pause := false, false
		var broken error
		switch {
		case err == nil || errors.Is(err, redis.Nil):
			if down {
				b.opts.Logger.Info("redisbus: reading resumed", "group", r.key.group, "consumer", r.key.consumer)
				down = false
			}
			backoff = 0
			r.pushHistory(hist, res, count)
			joined = r.pushNew(fresh, res, count, false)
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
		if joined {
			r.kickBlock()
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

// pushNew hands the new entries a read brought to their subscriptions. A subscription that got
// count entries may have more: the direct loop reads on (from the blocking loop). One that got
// fewer has its stream drained: it waits in the blocking read (from the direct loop; pushNew
// then reports that one joined it). From the blocking loop it reports whether the read brought
// entries but none got count: messages flow, slower than a read per entry (ReadLinger).
func (r *reader) pushNew(set []*sub, res []redis.XStream, count int64, blocking bool) bool {
	if len(set) == 0 {
		return false
	}
	some, full, joined := false, false, false
	got := make(map[*sub]int, len(res))
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
		some = true
		got[s] += len(st.Messages)
		ds := make([]*delivery, len(st.Messages))
		for i, x := range st.Messages {
			ds[i] = &delivery{s: s, id: x.ID, msg: decode(x), count: 1}
		}
		s.push(ds, false)
	}
	if blocking {
		// Only those that got entries can change: one that got count may have more.
		for s, n := range got {
			if int64(n) < count {
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
		return some && !full
	}
	// Every subscription of a direct read that got fewer than count has its stream drained.
	for _, s := range set {
		if int64(got[s]) >= count {
			continue
		}
		s.mu.Lock()
		if s.mode == modeDirect {
			s.mode = modeShared
			joined = true
		}
		s.mu.Unlock()
	}
	return joined
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
