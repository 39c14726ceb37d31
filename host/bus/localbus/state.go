package localbus

import (
	"fmt"
	"sort"
	"time"
)

// message is one message kept on a topic.
type message struct {
	seq     uint64
	payload []byte
	headers map[string]string
	size    int64 // payload and headers, for the backlog cap
}

// topic is one topic's messages: msgs[i] has sequence first+i.
type topic struct {
	id      uint64
	name    string
	first   uint64 // sequence of msgs[0]; everything below was trimmed
	next    uint64 // sequence the next Publish gets
	durable uint64 // messages below it are on disk and may be delivered
	msgs    []*message
	groups  map[string]*group
	dirty   bool // an ack since the last trim
}

// group is one consumer group: every sequence below next was handed out at least once, and is
// acknowledged unless it is in pending.
type group struct {
	id      uint64
	name    string
	t       *topic
	next    uint64
	pending map[uint64]*pend
	orphans map[uint64]*pend // the pending entries of no open subscription
	subs    map[string]*sub  // open subscriptions by consumer
}

// pend is one delivered, unacknowledged message of a group.
type pend struct {
	seq      uint64
	consumer string
	count    int       // deliveries so far
	sub      *sub      // the open subscription holding it; nil for an orphan
	since    time.Time // when it became an orphan: claimable ClaimAfter later
}

func (t *topic) message(seq uint64) *message {
	if seq < t.first || seq >= t.first+uint64(len(t.msgs)) {
		return nil
	}
	return t.msgs[seq-t.first]
}

func (t *topic) wakeAll() {
	for _, g := range t.groups {
		g.wakeAll()
	}
}

func (g *group) wakeAll() {
	for _, s := range g.subs {
		s.wakeUp()
	}
}

// floor is the lowest sequence the group still needs.
func (g *group) floor() uint64 {
	low := g.next
	for seq := range g.pending {
		if seq < low {
			low = seq
		}
	}
	return low
}

// orphan makes p claimable by other members from now on (at once when released).
func (g *group) orphan(p *pend, now time.Time) {
	p.sub = nil
	p.since = now
	g.orphans[p.seq] = p
}

// adopt hands the orphans left by consumer (a restarted host's subscription) back to s, in
// sequence order, before anything else.
func (g *group) adopt(s *sub) {
	var seqs []uint64
	for seq, p := range g.orphans {
		if p.consumer == s.consumer {
			seqs = append(seqs, seq)
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for _, seq := range seqs {
		p := g.orphans[seq]
		delete(g.orphans, seq)
		p.sub = s
		s.redeliver = append(s.redeliver, p)
	}
}

// consumers counts the consumers with an open subscription or pending messages.
func (g *group) consumers() int {
	names := make(map[string]bool, len(g.subs))
	for name := range g.subs {
		names[name] = true
	}
	for _, p := range g.orphans {
		names[p.consumer] = true
	}
	return len(names)
}

// The apply functions change the state; the log functions also append their record. Both run
// under Bus.mu; replay calls apply only.

func (b *Bus) apply(rec []byte) error {
	r := &reader{b: rec[1:]}
	switch rec[0] {
	case recTopic:
		id, name := r.uvarint(), r.string()
		if r.err == nil {
			b.addTopic(id, name)
		}
	case recGroup:
		id, tid, name, next := r.uvarint(), r.uvarint(), r.string(), r.uvarint()
		if r.err != nil {
			break
		}
		t := b.topicByID[tid]
		if t == nil {
			return fmt.Errorf("group %q of unknown topic %d", name, tid)
		}
		b.addGroup(t, id, name, next)
	case recSetNext:
		id, next := r.uvarint(), r.uvarint()
		if g := b.groupByID[id]; g != nil && r.err == nil && next > g.next {
			g.next = next
		}
	case recDelGroup:
		id := r.uvarint()
		if g := b.groupByID[id]; g != nil && r.err == nil {
			b.removeGroup(g)
		}
	case recPublish:
		tid, seq, payload := r.uvarint(), r.uvarint(), r.bytes()
		nh := r.uvarint()
		var headers map[string]string
		if nh > 0 && r.err == nil {
			if nh > uint64(len(r.b)) {
				return errShort
			}
			headers = make(map[string]string, nh)
			for range nh {
				k := r.string()
				headers[k] = r.string()
			}
		}
		if r.err != nil {
			break
		}
		t := b.topicByID[tid]
		if t == nil {
			return fmt.Errorf("message %d of unknown topic %d", seq, tid)
		}
		if seq != t.next {
			return fmt.Errorf("message %d of topic %q out of order (expected %d)", seq, t.name, t.next)
		}
		b.addMessage(t, append([]byte(nil), payload...), headers)
		t.durable = t.next
	case recDeliver:
		id, seq, count, consumer := r.uvarint(), r.uvarint(), r.uvarint(), r.string()
		g := b.groupByID[id]
		if g == nil || r.err != nil {
			break
		}
		p := g.pending[seq]
		if p == nil {
			p = &pend{seq: seq}
			g.pending[seq] = p
			g.orphans[seq] = p
		}
		p.consumer, p.count = consumer, int(count)
		if seq >= g.next {
			g.next = seq + 1
		}
	case recAck:
		id, seq := r.uvarint(), r.uvarint()
		if g := b.groupByID[id]; g != nil && r.err == nil {
			delete(g.pending, seq)
			delete(g.orphans, seq)
		}
	case recTrim:
		tid, first := r.uvarint(), r.uvarint()
		if t := b.topicByID[tid]; t != nil && r.err == nil {
			b.dropBefore(t, first)
		}
	default:
		return fmt.Errorf("unknown record type")
	}
	return r.err
}

func (b *Bus) addTopic(id uint64, name string) *topic {
	t := &topic{id: id, name: name, first: 1, next: 1, durable: 1, groups: map[string]*group{}}
	b.topics[name] = t
	b.topicByID[id] = t
	if id >= b.nextID {
		b.nextID = id + 1
	}
	return t
}

func (b *Bus) addGroup(t *topic, id uint64, name string, next uint64) *group {
	g := &group{id: id, name: name, t: t, next: next, pending: map[uint64]*pend{}, orphans: map[uint64]*pend{}, subs: map[string]*sub{}}
	if old := t.groups[name]; old != nil {
		b.removeGroup(old)
	}
	t.groups[name] = g
	b.groupByID[id] = g
	if id >= b.nextID {
		b.nextID = id + 1
	}
	return g
}

func (b *Bus) removeGroup(g *group) {
	if g.t.groups[g.name] == g {
		delete(g.t.groups, g.name)
	}
	delete(b.groupByID, g.id)
	g.t.dirty = true
}

func (b *Bus) addMessage(t *topic, payload []byte, headers map[string]string) *message {
	m := &message{seq: t.next, payload: payload, headers: headers, size: int64(len(payload))}
	for k, v := range headers {
		m.size += int64(len(k) + len(v))
	}
	t.msgs = append(t.msgs, m)
	t.next++
	b.backlog += m.size
	return m
}

// dropBefore forgets the messages of t below first.
func (b *Bus) dropBefore(t *topic, first uint64) {
	if first <= t.first {
		return
	}
	n := first - t.first
	if n > uint64(len(t.msgs)) {
		n = uint64(len(t.msgs))
	}
	for i := range n {
		b.backlog -= t.msgs[i].size
		t.msgs[i] = nil // let the payload go now, not when the slice is reallocated
	}
	t.msgs = t.msgs[n:]
	if cap(t.msgs) > 1024 && len(t.msgs) < cap(t.msgs)/4 {
		t.msgs = append(make([]*message, 0, 2*len(t.msgs)+16), t.msgs...)
	}
	t.first = first
	if t.next < first {
		t.next, t.durable = first, first
	}
}

// trim drops what every group of t acknowledged and logs it; a topic without groups keeps
// everything for the group to come.
func (b *Bus) trim(t *topic) int64 {
	t.dirty = false
	if len(t.groups) == 0 {
		return 0
	}
	low := t.durable
	for _, g := range t.groups {
		if f := g.floor(); f < low {
			low = f
		}
	}
	if low <= t.first {
		return 0
	}
	before := t.first
	b.dropBefore(t, low)
	b.logLazy(func(buf []byte) []byte {
		buf = append(buf, recTrim)
		buf = putUvarint(buf, t.id)
		return putUvarint(buf, low)
	})
	return int64(low - before)
}

// liveBytes estimates the size of a snapshot of the state.
func (b *Bus) liveBytes() int64 {
	n := b.backlog + 4096
	for _, t := range b.topics {
		n += int64(len(t.msgs))*16 + int64(len(t.name)) + 16
		for _, g := range t.groups {
			n += int64(len(g.pending))*24 + int64(len(g.name)) + 16
		}
	}
	return n
}

// snapshot encodes the whole state as a log: topics with their trim point and messages, groups
// with their cursor and pending deliveries.
func (b *Bus) snapshot() []byte {
	buf := make([]byte, 0, b.liveBytes())
	names := make([]string, 0, len(b.topics))
	for name := range b.topics {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t := b.topics[name]
		buf = frame(buf, func(buf []byte) []byte { return encTopic(buf, t) })
		buf = frame(buf, func(buf []byte) []byte {
			buf = append(buf, recTrim)
			buf = putUvarint(buf, t.id)
			return putUvarint(buf, t.first)
		})
		for _, m := range t.msgs {
			buf = frame(buf, func(buf []byte) []byte { return encPublish(buf, t, m) })
		}
		for _, g := range t.groups {
			buf = frame(buf, func(buf []byte) []byte { return encGroup(buf, g) })
			seqs := make([]uint64, 0, len(g.pending))
			for seq := range g.pending {
				seqs = append(seqs, seq)
			}
			sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
			for _, seq := range seqs {
				p := g.pending[seq]
				buf = frame(buf, func(buf []byte) []byte { return encDeliver(buf, g, p) })
			}
		}
	}
	return buf
}

func encTopic(buf []byte, t *topic) []byte {
	buf = append(buf, recTopic)
	buf = putUvarint(buf, t.id)
	return putString(buf, t.name)
}

func encGroup(buf []byte, g *group) []byte {
	buf = append(buf, recGroup)
	buf = putUvarint(buf, g.id)
	buf = putUvarint(buf, g.t.id)
	buf = putString(buf, g.name)
	return putUvarint(buf, g.next)
}

func encPublish(buf []byte, t *topic, m *message) []byte {
	buf = append(buf, recPublish)
	buf = putUvarint(buf, t.id)
	buf = putUvarint(buf, m.seq)
	buf = putBytes(buf, m.payload)
	buf = putUvarint(buf, uint64(len(m.headers)))
	for k, v := range m.headers {
		buf = putString(buf, k)
		buf = putString(buf, v)
	}
	return buf
}

func encDeliver(buf []byte, g *group, p *pend) []byte {
	buf = append(buf, recDeliver)
	buf = putUvarint(buf, g.id)
	buf = putUvarint(buf, p.seq)
	buf = putUvarint(buf, uint64(p.count))
	return putString(buf, p.consumer)
}
