package engine

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/requests"
)

// Compaction of the control log (control.go). The log would otherwise grow by every operation
// ever made, and a starting host would replay all of it. Instead:
//
//   - Each record is held on the topic by the group controlKeepGroup, whose members (every
//     serving host) take the records in turn and let each go (acknowledge it) once it is older
//     than Options.ControlHorizon and a snapshot taken after it is on the log. The bus trims
//     what every group acknowledged, so the log keeps the last horizon of records, the latest
//     snapshot, and whatever is younger.
//   - A snapshot is the table as the log had it at a checkpoint: the host publishes a checkpoint
//     record, and when its own reader reads it back — having applied, in log order, every
//     record before it and none after — it publishes that table as a snapshot record.
//   - A reader that starts on the log (a starting host, or a command reading it once) keeps the
//     records it applies until it meets a snapshot whose checkpoint it read: it then rebuilds its
//     table as that snapshot plus the records it read after the checkpoint. A record the bus
//     trimmed was let go only after a later checkpoint and its snapshot were published, so that
//     pair is on the log and the rebuilt table misses nothing; a reader that read the log from
//     its beginning rebuilds the table it had. Snapshots whose checkpoint it did not read are
//     older than one it will meet, and are skipped.
//   - Hosts publish an alive record every aliveEvery (with the broadcast listeners they receive).
//     A group of the topic no host has said is alive for deadAfter is a host that died without
//     deleting its group: it is deleted, or it would hold every record on the topic for ever.
//
// A snapshot leaves out what no longer matters: a request that is not paused, and a skipped or
// force-failed node, whose latest record is older than requests.Retention. (A resumed request is
// kept that long too: a node made while it was paused carries the pause in its envelope, and a
// host that knew nothing of the request would take that for the pause itself.)

// controlState is a snapshot's table.
type controlState struct {
	Nodes    map[string]savedNode    `json:"nodes,omitempty"`
	Requests map[string]savedRequest `json:"requests,omitempty"`
}

type savedNode struct {
	Op      string    `json:"op"`
	Attempt int       `json:"attempt,omitempty"`
	At      time.Time `json:"at"`
}

type savedRequest struct {
	Paused  bool      `json:"paused,omitempty"`
	Revoked bool      `json:"revoked,omitempty"`
	Ended   []string  `json:"ended,omitempty"`
	Marked  []string  `json:"marked,omitempty"`
	At      time.Time `json:"at"`
}

// retention is how long a snapshot keeps what only ends deliveries: a revoked request, a skipped
// or force-failed node.
const retention = time.Duration(requests.Retention) * time.Second

// snapshot is the table's state as a snapshot saves it.
func (c *controlTable) snapshot(now time.Time) *controlState {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := &controlState{Nodes: map[string]savedNode{}, Requests: map[string]savedRequest{}}
	for id, n := range c.nodes {
		if n.op != ctlPauseNode && now.Sub(n.at) > retention {
			continue
		}
		st.Nodes[id] = savedNode{Op: n.op, Attempt: n.attempt, At: n.at}
	}
	for id, r := range c.requests {
		if !r.paused && now.Sub(r.at) > retention {
			continue
		}
		st.Requests[id] = savedRequest{Paused: r.paused, Revoked: r.revoked, Ended: keys(r.ended), Marked: keys(r.marked), At: r.at}
	}
	return st
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// restore sets the table's state to st (a new table: nothing else is in it).
func (c *controlTable) restore(st *controlState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, n := range st.Nodes {
		c.nodes[id] = nodeControl{op: n.Op, attempt: n.Attempt, at: n.At}
	}
	for id, r := range st.Requests {
		rc := c.request(id)
		rc.paused, rc.revoked, rc.at = r.Paused, r.Revoked, r.At
		for _, n := range r.Ended {
			rc.ended[n] = true
		}
		for _, n := range r.Marked {
			rc.marked[n] = true
		}
	}
}

// isChange says whether records of op change the table's state (and a snapshot saves them).
func isChange(op string) bool {
	switch op {
	case ctlPauseNode, ctlResumeNode, ctlSkipNode, ctlForcedFail, ctlPauseRequest, ctlResumeRequest, ctlRevokeRequest:
		return true
	}
	return false
}

// controlReader applies the control log, as read, to a table (the module comment says how it
// meets snapshots).
type controlReader struct {
	mu sync.Mutex
	// live is the table the host decides by; log the same records in log order, nothing applied
	// ahead, which is what a snapshot saves.
	live, log *controlTable
	// exact: the table was rebuilt from a snapshot (or this reader read the whole log); until
	// then buf keeps every change read, and at the place in buf of each checkpoint read.
	exact bool
	buf   []controlRec
	at    map[string]int
	// mine are the changes this host published and has not read back yet, in publish order:
	// applied to live ahead of the log (publishControl). Each lies after whatever the reader
	// reads meanwhile, so they are applied again after it: a host that paused and then resumed
	// a request does not see it paused again when its reader reaches the pause.
	mine []controlRec
}

func newControlReader(live *controlTable) *controlReader {
	return &controlReader{live: live, log: newControlTable(), at: map[string]int{}}
}

func (r *controlReader) published(rec controlRec) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mine = append(r.mine, rec)
}

func (r *controlReader) unpublished(rec controlRec) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.forget(rec.ID)
}

func (r *controlReader) forget(id string) {
	for i, x := range r.mine {
		if x.ID == id {
			r.mine = append(r.mine[:i:i], r.mine[i+1:]...)
			return
		}
	}
}

// read applies one record read from the log.
func (r *controlReader) read(rec controlRec) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case rec.Op == ctlCheckpoint:
		if !r.exact {
			r.at[rec.Mark] = len(r.buf)
		}
	case rec.Op == ctlSnapshot:
		i, ok := r.at[rec.Mark]
		if r.exact || !ok || rec.State == nil {
			return
		}
		// The table is the snapshot and what followed its checkpoint (twice: the log's own,
		// and the live one with this host's changes not read back yet).
		build := func(ahead bool) *controlTable {
			t := newControlTable()
			t.restore(rec.State)
			for _, x := range r.buf[i:] {
				t.apply(x)
			}
			if ahead {
				for _, x := range r.mine {
					t.apply(x)
				}
			}
			return t
		}
		alive, receivers := r.log.liveness()
		r.log = build(false)
		r.log.alive, r.log.receivers = alive, receivers
		fresh := build(true)
		fresh.alive, fresh.receivers = r.live.liveness()
		r.live.replace(fresh)
		r.exact, r.buf, r.at = true, nil, nil
	case isChange(rec.Op):
		r.forget(rec.ID)
		r.log.apply(rec)
		r.live.apply(rec)
		for _, x := range r.mine {
			r.live.apply(x)
		}
		if !r.exact {
			r.buf = append(r.buf, rec)
		}
	default: // markers, alive records
		r.log.apply(rec)
		r.live.apply(rec)
	}
}

// state is the log's table now, as a snapshot saves it.
func (r *controlReader) state(now time.Time) *controlState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.snapshot(now)
}

// liveness is a copy of the table's alive records.
func (c *controlTable) liveness() (map[string]time.Time, map[string]map[string]time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	alive := make(map[string]time.Time, len(c.alive))
	for g, at := range c.alive {
		alive[g] = at
	}
	receivers := make(map[string]map[string]time.Time, len(c.receivers))
	for l, gs := range c.receivers {
		receivers[l] = make(map[string]time.Time, len(gs))
		for g, at := range gs {
			receivers[l][g] = at
		}
	}
	return alive, receivers
}

// readControl applies one record this host read from the log; a checkpoint of its own is
// answered with the snapshot of the table as of it.
func (e *Engine) readControl(rec controlRec) {
	e.reader.read(rec)
	if rec.Op != ctlCheckpoint {
		return
	}
	e.snapMu.Lock()
	done, mine := e.checkpoints[rec.Mark]
	delete(e.checkpoints, rec.Mark)
	e.snapMu.Unlock()
	if !mine {
		return
	}
	done <- e.publishControl(e.ctx, controlRec{Op: ctlSnapshot, Mark: rec.Mark, State: e.reader.state(time.Now())})
}

// snapshotAfter makes sure a snapshot whose checkpoint was published after t is on the log:
// the latest one this host published, or a new one. Callers at once share one.
func (e *Engine) snapshotAfter(ctx context.Context, t time.Time) error {
	e.snapTake.Lock()
	defer e.snapTake.Unlock()
	if e.snapAt.After(t) {
		return nil
	}
	at, mark := time.Now(), newMark()
	done := make(chan error, 1)
	e.snapMu.Lock()
	e.checkpoints[mark] = done
	e.snapMu.Unlock()
	if err := e.publishControl(ctx, controlRec{Op: ctlCheckpoint, Mark: mark}); err != nil {
		e.snapMu.Lock()
		delete(e.checkpoints, mark)
		e.snapMu.Unlock()
		return err
	}
	select {
	case err := <-done:
		if err != nil {
			return err
		}
		e.snapAt = at
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(30 * time.Second):
		return errors.New("engine: the control log did not bring the checkpoint back within 30 s")
	}
}

// compactControl lets each record the keep group hands this host go once it is older than the
// horizon and a snapshot taken after it is on the log. Records come in log order; one still
// young holds the ones behind it, which are younger still.
func (e *Engine) compactControl() {
	defer e.wg.Done()
	for d := range e.controlKeep.Deliveries() {
		got := time.Now()
		var rec controlRec
		if err := json.Unmarshal(d.Message().Payload, &rec); err != nil {
			_ = d.Ack(e.ctx)
			continue
		}
		if !sleepUntil(e.ctx, rec.At.Add(e.opts.ControlHorizon)) {
			return // stopping: the record stays pending, and another member (or the next start) takes it
		}
		for {
			err := e.snapshotAfter(e.ctx, got)
			if err == nil {
				break
			}
			if e.ctx.Err() != nil {
				return
			}
			e.opts.Logger.Warn("engine: control log compaction", "err", err)
			if !sleepUntil(e.ctx, time.Now().Add(time.Second)) {
				return
			}
		}
		_ = d.Ack(e.ctx)
	}
}

// publishAlive says this host is alive, with the broadcast listeners it receives.
func (e *Engine) publishAlive(ctx context.Context) error {
	return e.publishControl(ctx, controlRec{Op: ctlAlive, Group: e.controlGroup(), Receivers: e.receiverGroups(e.opts.Snapshot())})
}

// receiverGroups names, for each broadcast listener this host receives (the enabled ones of
// app version snap), its group.
func (e *Engine) receiverGroups(snap *registry.Snapshot) map[string]string {
	out := map[string]string{}
	for _, l := range ListenersOf(snap) {
		if l.Enabled && l.HandlerType == HandlerBroadcast {
			out[l.FullName] = l.Group(e.opts.HostName, e.opts.InstanceID)
		}
	}
	return out
}

// aliveEvery is how often a host says it is alive: a third of the claim timeout, so a host is
// known dead (deadAfter, three silences) about when its deliveries are claimed.
func (e *Engine) aliveEvery() time.Duration { return max(e.opts.ClaimAfter/3, 10*time.Millisecond) }

func (e *Engine) deadAfter() time.Duration { return 3 * e.aliveEvery() }

// beAlive publishes this host's alive record every aliveEvery and, with compaction on, deletes
// the groups of the control topic whose host is dead.
func (e *Engine) beAlive() {
	defer e.wg.Done()
	tick := time.NewTicker(e.aliveEvery())
	defer tick.Stop()
	suspect := map[string]time.Time{} // groups seen without a recent alive record, since when
	failing := false                  // the last publish failed: said once per streak
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-tick.C:
		}
		err := e.publishAlive(e.ctx)
		if err != nil && !failing && e.ctx.Err() == nil {
			e.opts.Logger.Warn("engine: control log: say this host is alive", "err", err)
		}
		failing = err != nil
		if e.opts.ControlHorizon >= 0 {
			e.dropDeadGroups(suspect)
		}
	}
}

// dropDeadGroups deletes the groups of the control topic (hosts' and commands') no alive record
// has named for deadAfter, this host having watched them that long.
func (e *Engine) dropDeadGroups(suspect map[string]time.Time) {
	lag, err := e.opts.Bus.Lag(e.ctx, controlTopic)
	if err != nil {
		return
	}
	now := time.Now()
	alive, _ := e.control.liveness()
	seen := map[string]bool{}
	for _, g := range lag {
		name := g.Group
		if name == controlKeepGroup || name == e.controlGroup() || !(strings.HasPrefix(name, "host:") || strings.HasPrefix(name, "once_")) {
			continue
		}
		seen[name] = true
		if now.Sub(alive[name]) < e.deadAfter() {
			delete(suspect, name)
			continue
		}
		since, ok := suspect[name]
		if !ok {
			suspect[name] = now
			continue
		}
		if now.Sub(since) >= e.deadAfter() {
			if err := e.opts.Bus.DeleteGroup(e.ctx, controlTopic, name); err == nil {
				delete(suspect, name)
			}
		}
	}
	for name := range suspect {
		if !seen[name] {
			delete(suspect, name)
		}
	}
}

// liveReceivers are the groups of broadcast listener l whose host said it is alive within
// deadAfter: the receivers a broadcast sent now counts on (finish.go).
func (e *Engine) liveReceivers(l *Listener) []string {
	e.control.mu.Lock()
	defer e.control.mu.Unlock()
	now := time.Now()
	var out []string
	for g, at := range e.control.receivers[l.FullName] {
		if now.Sub(at) < e.deadAfter() {
			out = append(out, g)
		}
	}
	sort.Strings(out)
	return out
}
