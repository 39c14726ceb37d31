package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

// The control log: how a node or request operation reaches every host of the cluster
// (docs/events.md, "Operations"). Each operation that changes what a host must do with a
// delivery — pause, resume, skip and forcedFail of a node, pause, resume and revoke of a
// request — publishes a record on the bus topic controlTopic. Every engine reads the whole topic
// (a consumer group of its own, from the oldest record) into an in-memory table, so checking a
// delivery costs a map lookup, and a host that starts later replays what happened before it.
// The group controlKeepGroup holds each record on the topic (the bus trims only what every group
// acknowledged), which is what makes the records durable, until the log is compacted: a record
// older than Options.ControlHorizon is let go once a snapshot of the table taken after it is on
// the log, so the log holds the last horizon of changes and the snapshot of what came before
// (controlsnap.go). Hosts also publish that they are alive, with the broadcast listeners they
// receive, so a dead host's group is dropped from the topic and a broadcast is counted for the
// receivers that will run it (finish.go).
//
// A host that takes a delivery checks the table first: a paused node, or a node of a paused
// request, is held — moved to the listener's held queue, where it waits pending on whichever
// host took it (held.go) until resume; a skipped or force-failed
// node is acknowledged without running; a node of a revoked request is ended as revoked. A
// forcedFail record also cancels the node's handler on the host running it.

const (
	controlTopic     = "control:ops"
	controlKeepGroup = "keep"
)

// Control operations, as recorded.
const (
	ctlMark          = "mark" // a host's own marker: it has read everything before it
	ctlPauseNode     = "pauseNode"
	ctlResumeNode    = "resumeNode"
	ctlSkipNode      = "skipNode"
	ctlForcedFail    = "forcedFailNode"
	ctlPauseRequest  = "pauseRequest"
	ctlResumeRequest = "resumeRequest"
	ctlRevokeRequest = "revokeRequest"
	ctlAlive         = "alive"      // a host is alive: its group and broadcast receivers
	ctlCheckpoint    = "checkpoint" // a point of the log the snapshot that follows describes
	ctlSnapshot      = "snapshot"   // the table as of its checkpoint (controlsnap.go)
)

// controlRec is one control record.
type controlRec struct {
	Op        string `json:"op"`
	NodeID    string `json:"nodeId,omitempty"`
	RequestID string `json:"requestId,omitempty"`
	// Attempt bounds a node record: it applies to deliveries of that attempt or earlier, so a
	// later retry or resend of the node runs.
	Attempt int `json:"attempt,omitempty"`
	// Ended are the nodes a revoke already recorded as revoked (the host that drops their
	// delivery writes no second row), or a request pause as paused (the host that holds one
	// records the others, created later).
	Ended []string  `json:"ended,omitempty"`
	Mark  string    `json:"mark,omitempty"`
	At    time.Time `json:"at"`
	// ID tells a record this host published from the others when it reads it back.
	ID string `json:"id,omitempty"`
	// Group is an alive record's host: its group on the control topic. Receivers are the
	// broadcast listeners that host receives, each with its group on the listener's topic.
	Group     string            `json:"group,omitempty"`
	Receivers map[string]string `json:"receivers,omitempty"`
	// State is a snapshot's table.
	State *controlState `json:"state,omitempty"`
}

type nodeControl struct {
	op      string
	attempt int
	at      time.Time // of the record
}

type requestControl struct {
	paused, revoked bool
	// ended are the nodes a revoke recorded as revoked; marked those a pause recorded as paused.
	ended, marked map[string]bool
	at            time.Time // of the latest record
}

// controlTable is what this host knows of the control log.
type controlTable struct {
	mu       sync.Mutex
	nodes    map[string]nodeControl
	requests map[string]*requestControl
	changed  chan struct{}
	marks    map[string]chan struct{}
	// running cancels the handler running here for a node (key nodeID), for forcedFail.
	running map[string]runningRun
	// markAt is when each of this host's markers in flight was published; freshAt the latest
	// such time read back: this host has read every record published before it. barrier is
	// the marker callers of awaitControl share, published at barrierAt.
	markAt    map[string]time.Time
	freshAt   time.Time
	barrier   chan struct{}
	barrierAt time.Time
	// alive is when each host (its control group) last said it is alive; receivers, per
	// broadcast listener, when each of its receiver groups last did.
	alive     map[string]time.Time
	receivers map[string]map[string]time.Time
}

type runningRun struct {
	attempt int
	cancel  context.CancelCauseFunc
}

// errForcedFail is the cause a forcedFail cancels a running handler with.
var errForcedFail = errors.New("engine: the node was force-failed")

func newControlTable() *controlTable {
	return &controlTable{nodes: map[string]nodeControl{}, requests: map[string]*requestControl{},
		changed: make(chan struct{}), marks: map[string]chan struct{}{}, running: map[string]runningRun{},
		markAt: map[string]time.Time{}, alive: map[string]time.Time{}, receivers: map[string]map[string]time.Time{}}
}

func (c *controlTable) request(id string) *requestControl {
	r := c.requests[id]
	if r == nil {
		r = &requestControl{ended: map[string]bool{}, marked: map[string]bool{}}
		c.requests[id] = r
	}
	return r
}

// apply takes one record into the table; applying a record twice changes nothing more.
func (c *controlTable) apply(rec controlRec) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch rec.Op {
	case ctlMark:
		if ch, ok := c.marks[rec.Mark]; ok {
			close(ch)
			delete(c.marks, rec.Mark)
			if at, ok := c.markAt[rec.Mark]; ok {
				if at.After(c.freshAt) {
					c.freshAt = at
				}
				delete(c.markAt, rec.Mark)
			}
			if c.barrier == ch {
				c.barrier = nil
			}
		}
		return
	case ctlAlive:
		// Liveness changes no delivery's fate: nothing waits on it.
		if rec.At.After(c.alive[rec.Group]) {
			c.alive[rec.Group] = rec.At
		}
		for l, g := range rec.Receivers {
			if c.receivers[l] == nil {
				c.receivers[l] = map[string]time.Time{}
			}
			if rec.At.After(c.receivers[l][g]) {
				c.receivers[l][g] = rec.At
			}
		}
		return
	case ctlPauseNode, ctlSkipNode, ctlForcedFail:
		c.nodes[rec.NodeID] = nodeControl{op: rec.Op, attempt: rec.Attempt, at: rec.At}
		if rec.Op == ctlForcedFail {
			if run, ok := c.running[rec.NodeID]; ok && run.attempt <= rec.Attempt {
				run.cancel(errForcedFail)
			}
		}
	case ctlResumeNode:
		if n, ok := c.nodes[rec.NodeID]; ok && n.op == ctlPauseNode {
			delete(c.nodes, rec.NodeID)
		}
	case ctlPauseRequest:
		r := c.request(rec.RequestID)
		r.paused, r.at = true, rec.At
		for _, n := range rec.Ended {
			r.marked[n] = true
		}
	case ctlResumeRequest:
		// The marks were of this pause; a later pause records its own.
		r := c.request(rec.RequestID)
		r.paused, r.at, r.marked = false, rec.At, map[string]bool{}
	case ctlRevokeRequest:
		r := c.request(rec.RequestID)
		r.revoked, r.at = true, rec.At
		for _, n := range rec.Ended {
			r.ended[n] = true
		}
	default:
		return
	}
	close(c.changed)
	c.changed = make(chan struct{})
}

// verdict is what a host does with a delivery.
type verdict int

const (
	verdictRun verdict = iota
	verdictHold
	verdictDrop        // acknowledged without running: its end is recorded already
	verdictDropRevoked // acknowledged without running, recorded as revoked by this host
)

// check says what to do with a delivery of env, and gives the channel that closes at the
// table's next change (for a hold).
func (c *controlTable) check(env *envelope) (verdict, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if env.RequestPaused && c.requests[env.RequestID] == nil {
		// The sender read a pause this host has not read yet (the control log is read
		// asynchronously): take the pause as the sender knew it. The record itself follows —
		// it was published before the node — and a later resume applies as usual.
		c.request(env.RequestID).paused = true
	}
	n, nodeOp := c.nodes[env.NodeID]
	nodeOp = nodeOp && env.Attempt <= n.attempt
	if nodeOp && n.op != ctlPauseNode {
		// Skipped or force-failed: that operation recorded the end, before any revoke of its
		// request could (a revoke lists only the nodes still waiting).
		return verdictDrop, nil
	}
	if r := c.requests[env.RequestID]; r != nil {
		switch {
		case r.revoked && r.ended[env.NodeID]:
			return verdictDrop, nil
		case r.revoked:
			return verdictDropRevoked, nil
		}
	}
	if nodeOp {
		return verdictHold, c.changed
	}
	if r := c.requests[env.RequestID]; r != nil && r.paused {
		return verdictHold, c.changed
	}
	return verdictRun, nil
}

// markHeld says whether the host holding env for its paused request records the node as paused
// (it was not among the nodes the pause recorded), and notes that it does.
func (c *controlTable) markHeld(env *envelope) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.requests[env.RequestID]
	if r == nil || !r.paused || r.marked[env.NodeID] {
		return false
	}
	if n, ok := c.nodes[env.NodeID]; ok && n.op == ctlPauseNode && env.Attempt <= n.attempt {
		return false
	}
	r.marked[env.NodeID] = true
	return true
}

// requestState is "revoked", "paused" or "" for a request this host knows no record of.
func (c *controlTable) requestState(id string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch r := c.requests[id]; {
	case r == nil:
		return ""
	case r.revoked:
		return "revoked"
	case r.paused:
		return "paused"
	}
	return ""
}

// nodePaused says whether the node itself (not its request) is paused.
func (c *controlTable) nodePaused(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id].op == ctlPauseNode
}

// startRun registers the run of env, cancellable by a forcedFail; it answers false when a
// forcedFail for it came first.
func (c *controlTable) startRun(env *envelope, cancel context.CancelCauseFunc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.running[env.NodeID] = runningRun{attempt: env.Attempt, cancel: cancel}
	if n, ok := c.nodes[env.NodeID]; ok && n.op == ctlForcedFail && env.Attempt <= n.attempt {
		cancel(errForcedFail)
	}
}

func (c *controlTable) endRun(env *envelope) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.running[env.NodeID]; ok && r.attempt == env.Attempt {
		delete(c.running, env.NodeID)
	}
}

// controlGroup is this engine's consumer group of the control topic.
func (e *Engine) controlGroup() string { return "host:" + e.opts.InstanceID }

// startControl subscribes to the control topic and returns once every record published before
// it has been applied (or ctx ended), so no delivery is run before this host knows it is held.
func (e *Engine) startControl(ctx context.Context) error {
	// The keep group's members hold each record until the horizon: a modest prefetch keeps the
	// liveness heartbeats of what they hold cheap (the rest waits undelivered, younger anyway).
	keep, err := e.opts.Bus.Subscribe(ctx, controlTopic, controlKeepGroup, bus.SubscribeOptions{Consumer: e.opts.InstanceID,
		Start: bus.StartOldest, ClaimAfter: e.opts.ClaimAfter, Prefetch: 256})
	if err != nil {
		return fmt.Errorf("engine: control log: %w", err)
	}
	if e.opts.ControlHorizon < 0 {
		_ = keep.Close() // never compacted: the group stays and keeps every record; nobody reads it
	} else {
		e.controlKeep = keep
	}
	sub, err := e.opts.Bus.Subscribe(ctx, controlTopic, e.controlGroup(), bus.SubscribeOptions{
		Consumer: e.opts.InstanceID, Start: bus.StartOldest, Prefetch: retryPrefetch, ClaimAfter: -1})
	if err != nil {
		return fmt.Errorf("engine: control log: %w", err)
	}
	e.controlSub = sub
	e.reader = newControlReader(e.control)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for d := range sub.Deliveries() {
			var rec controlRec
			if err := json.Unmarshal(d.Message().Payload, &rec); err != nil {
				e.opts.Logger.Error("engine: dropping an unreadable control record", "err", err)
			} else {
				e.readControl(rec)
			}
			_ = d.Ack(e.ctx)
		}
	}()
	// Alive before the marker: a host that lists the topic's groups meanwhile sees this one live.
	if err := e.publishAlive(ctx); err != nil {
		return err
	}
	mark := newMark()
	seen := make(chan struct{})
	e.control.mu.Lock()
	e.control.marks[mark] = seen
	e.control.mu.Unlock()
	if err := e.publishControl(ctx, controlRec{Op: ctlMark, Mark: mark}); err != nil {
		return err
	}
	select {
	case <-seen:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(30 * time.Second):
		return errors.New("engine: the control log did not catch up within 30 s")
	}
}

// publishControl records rec on the control log and applies it here at once (a change: the
// reader knows it until it reads it back, controlsnap.go).
func (e *Engine) publishControl(ctx context.Context, rec controlRec) error {
	rec.At = time.Now()
	change := isChange(rec.Op)
	if change {
		rec.ID = vocab.NewID("ctl_")
		if e.reader != nil {
			e.reader.published(rec)
		}
	}
	payload, _ := json.Marshal(&rec)
	if _, err := e.opts.Bus.Publish(ctx, controlTopic, &bus.Message{Payload: payload}); err != nil {
		if change && e.reader != nil {
			e.reader.unpublished(rec)
		}
		return fmt.Errorf("%w: record %s: %v", ErrUnavailable, rec.Op, err)
	}
	if change || rec.Op == ctlAlive {
		e.control.apply(rec)
	}
	return nil
}

// gate decides a delivery's fate before it runs: run it now, hold it (the caller moves it to
// the held queue, held.go), or drop it (acknowledged without running).
func (e *Engine) gate(ctx context.Context, env *envelope) verdict {
	switch v, _ := e.control.check(env); v {
	case verdictDropRevoked:
		r := e.row(env, logstore.StatusFail, logstore.StageRevoked, time.Now())
		r.Error = revokedError(env.RequestID)
		e.writeRows(ctx, r)
		e.closeNode(ctx, env.RequestID, env.NodeID)
		return verdictDrop
	case verdictHold:
		if e.control.markHeld(env) {
			e.writeRows(ctx, e.row(env, logstore.StatusWaiting, logstore.StagePaused, time.Now()))
		}
		return verdictHold
	default:
		return v
	}
}

func newMark() string { return vocab.NewID("mark_") }

// syncControl brings the control table of an engine that does not consume (a `trellis node`
// or `trellis request` command, a host without ServeEvents) up to date with the control log
// before an operation reads it: it reads the whole log once, under a group of its own that it
// deletes afterwards. A started engine follows the log as it goes and returns at once.
func (e *Engine) syncControl(ctx context.Context) error {
	e.mu.Lock()
	started := e.started
	e.mu.Unlock()
	if started {
		return nil
	}
	group := vocab.NewID("once_")
	sub, err := e.opts.Bus.Subscribe(ctx, controlTopic, group, bus.SubscribeOptions{
		Consumer: e.opts.InstanceID, Start: bus.StartOldest, Prefetch: retryPrefetch, ClaimAfter: -1})
	if err != nil {
		return fmt.Errorf("%w: read the control log: %v", ErrUnavailable, err)
	}
	defer func() {
		_ = sub.Close()
		_ = e.opts.Bus.DeleteGroup(context.Background(), controlTopic, group)
	}()
	// Alive (under its group) while it reads: a host dropping dead groups leaves this one be.
	if err := e.publishControl(ctx, controlRec{Op: ctlAlive, Group: group}); err != nil {
		return err
	}
	mark := newMark()
	if err := e.publishControl(ctx, controlRec{Op: ctlMark, Mark: mark}); err != nil {
		return err
	}
	fresh := newControlTable()
	reader := newControlReader(fresh)
	timeout := time.After(30 * time.Second)
	for {
		select {
		case d, ok := <-sub.Deliveries():
			if !ok {
				return fmt.Errorf("%w: the control log closed", ErrUnavailable)
			}
			var rec controlRec
			if json.Unmarshal(d.Message().Payload, &rec) == nil {
				if rec.Op == ctlMark && rec.Mark == mark {
					_ = d.Ack(ctx)
					e.control.replace(reader.live)
					return nil
				}
				reader.read(rec)
			}
			_ = d.Ack(ctx)
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout:
			return fmt.Errorf("%w: the control log did not answer within 30 s", ErrUnavailable)
		}
	}
}

// replace takes the state of fresh (runs in flight stay registered, markers stay awaited).
func (c *controlTable) replace(fresh *controlTable) {
	fresh.mu.Lock()
	nodes, requests, alive, receivers := fresh.nodes, fresh.requests, fresh.alive, fresh.receivers
	fresh.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes, c.requests, c.alive, c.receivers = nodes, requests, alive, receivers
	close(c.changed)
	c.changed = make(chan struct{})
}
