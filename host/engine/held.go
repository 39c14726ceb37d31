package engine

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/logstore"
)

// Held nodes (docs/events.md, "Operations"). A delivery of a paused node, or of a node of a
// paused request, does not wait on its listener's queue, where it would occupy one of the
// listener's prefetch slots on the host that took it: the host moves it to the listener's held
// queue (heldTopic: published there, then the original acknowledged) and a pump, like the one
// of scheduled retries, keeps it there — pending on whichever host took it, so a host that dies
// leaves it to another — until the control log lets it go:
//
//   - resumed (the node, or its request): it goes back on the listener's queue and runs as any
//     delivery does. Before that the pump makes sure it has read every control record published
//     before it took the entry (a marker round trip, shared by the entries waiting for one), so
//     a host that has not read the pause yet does not let the node go; and it checks the node's
//     latest log row, so a duplicate (the bus delivers at least once) of an attempt that already
//     ran, ended or was overtaken by a later attempt is dropped;
//   - skipped or force-failed (that attempt): acknowledged, the operation recorded its end;
//   - its request revoked: acknowledged, recorded fail/revoked unless the revoke recorded it.
//
// The held queue has a prefetch of its own (Options.HeldPrefetch). When a host holds that many
// for one listener, an entry held longer than heldRotateAfter is moved to the tail of the held
// queue (published again, then acknowledged), so entries behind them — a node resumed meanwhile —
// are read in turn and nothing waits for an unrelated resume.

// heldTopic is the queue the held deliveries of listener l wait on. A broadcast receiver has
// one of its own: every group of a topic gets every message.
func (e *Engine) heldTopic(l *Listener) string {
	if l.HandlerType == HandlerBroadcast {
		return "held:" + l.Topic() + ":" + l.Group(e.opts.HostName, e.opts.InstanceID)
	}
	return "held:" + l.Topic()
}

// heldGroup is the consumer group of every held queue.
const heldGroup = "pump"

// heldRotateAfter is how long a host at its held prefetch keeps an entry before moving it to
// the tail of the held queue: a third of the claim timeout, so a live host's entries are
// never claimed by another meanwhile.
func (e *Engine) heldRotateAfter() time.Duration { return e.opts.ClaimAfter / 3 }

// hold moves a held delivery of l to its held queue; the caller acknowledges the original.
func (e *Engine) hold(ctx context.Context, l *Listener, env *envelope) error {
	payload, _ := json.Marshal(env)
	_, err := e.opts.Bus.Publish(ctx, e.heldTopic(l), &bus.Message{Payload: payload})
	return err
}

// pumpHeld keeps the held deliveries of l until the control log lets each go.
func (e *Engine) pumpHeld(l *Listener) deliveryFunc {
	var inflight atomic.Int64
	return func(d bus.Delivery) {
		inflight.Add(1)
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			defer inflight.Add(-1)
			e.keepHeld(l, d, func() bool { return inflight.Load() >= int64(e.opts.HeldPrefetch) })
		}()
	}
}

// keepHeld waits with one held delivery until it goes back to its listener's queue, ends, or
// (full says the host holds as many as it may) moves to the tail of the held queue.
func (e *Engine) keepHeld(l *Listener, d bus.Delivery, full func() bool) {
	ctx := e.ctx
	var env envelope
	if err := json.Unmarshal(d.Message().Payload, &env); err != nil {
		_ = d.Ack(ctx)
		return
	}
	// One entry per attempt of a node is enough: a host that died between publishing a held
	// entry and acknowledging the delivery it came from leaves two (its entry, and the one the
	// host that claims the delivery makes), and both released would run the node twice.
	key := env.NodeID + "\x00" + strconv.Itoa(env.Attempt)
	if !e.heldKeys.take(key) {
		_ = d.Ack(ctx)
		return
	}
	registered := true
	defer func() {
		if registered {
			e.heldKeys.drop(key, 0)
		}
	}()
	taken := time.Now()
	fresh := false
	rotate := time.NewTimer(e.heldRotateAfter())
	defer rotate.Stop()
	for {
		v, changed := e.control.check(&env)
		switch v {
		case verdictDrop:
			_ = d.Ack(ctx)
			return
		case verdictDropRevoked:
			r := e.row(&env, logstore.StatusFail, logstore.StageRevoked, time.Now())
			r.Error = revokedError(env.RequestID)
			e.writeRows(ctx, r)
			e.closeNode(ctx, env.RequestID, env.NodeID)
			_ = d.Ack(ctx)
			return
		case verdictRun:
			if !fresh {
				// This table may not have read the pause the holding host read: read up to now.
				if err := e.awaitControl(ctx, taken); err != nil {
					_ = d.Nack(context.Background())
					return
				}
				fresh = true
				continue
			}
			if !e.releasable(ctx, &env) {
				_ = d.Ack(ctx)
				return
			}
			if err := e.release(ctx, l, &env); err != nil {
				_ = d.Nack(context.Background())
				return
			}
			_ = d.Ack(ctx)
			// A copy read meanwhile would find the log still waiting for the attempt (the
			// released delivery has not run yet): it stays known as held a while longer.
			registered = false
			e.heldKeys.drop(key, e.opts.ClaimAfter)
			return
		}
		select {
		case <-changed:
		case <-rotate.C:
			if full() {
				// The new entry is this one: it must not find the key taken.
				e.heldKeys.drop(key, 0)
				if err := e.hold(ctx, l, &env); err == nil {
					registered = false
					_ = d.Ack(ctx)
					return
				}
				e.heldKeys.take(key)
			}
			rotate.Reset(e.heldRotateAfter())
		case <-ctx.Done():
			// Stopping: another host, or the next start, takes it.
			_ = d.Nack(context.Background())
			return
		}
	}
}

// release puts a held delivery back on its listener's queue. A broadcast receiver's goes to
// that receiver only (the others acknowledge it without running it, as a resend of one
// receiver's node).
func (e *Engine) release(ctx context.Context, l *Listener, env *envelope) error {
	out := *env
	out.RequestPaused = false // the pause it carried is over: this host read the resume
	if l.HandlerType == HandlerBroadcast {
		out.Receiver = e.receiverSuffix(l)
	}
	payload, _ := json.Marshal(&out)
	_, err := e.opts.Bus.Publish(ctx, l.Topic(), &bus.Message{Payload: payload})
	return err
}

// releasable says whether the node's log still waits for this attempt: false when the attempt
// already ran or ended, or a later attempt of the node is waiting (a duplicate held entry, or
// one overtaken by a retry or resend). A node the log does not know yet (it trails) runs.
func (e *Engine) releasable(ctx context.Context, env *envelope) bool {
	last, err := e.latestState(ctx, env.NodeID)
	if err != nil {
		return true
	}
	if isWaiting(last) {
		return nextAttempt(last) <= env.Attempt
	}
	return last.Attempt < env.Attempt
}

// awaitControl returns once this host has read every control record published before t: it
// publishes a marker and waits to read it back. Callers waiting at once share one marker.
func (e *Engine) awaitControl(ctx context.Context, t time.Time) error {
	c := e.control
	for {
		c.mu.Lock()
		if !c.freshAt.Before(t) {
			c.mu.Unlock()
			return nil
		}
		ch := c.barrier
		if ch == nil || c.barrierAt.Before(t) {
			at, mark := time.Now(), newMark()
			ch = make(chan struct{})
			c.marks[mark], c.markAt[mark] = ch, at
			c.barrier, c.barrierAt = ch, at
			c.mu.Unlock()
			if err := e.publishControl(ctx, controlRec{Op: ctlMark, Mark: mark}); err != nil {
				c.mu.Lock()
				delete(c.marks, mark)
				delete(c.markAt, mark)
				if c.barrier == ch {
					c.barrier = nil
				}
				c.mu.Unlock()
				return err
			}
		} else {
			c.mu.Unlock()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// heldSet is the held entries a host keeps, by node and attempt (keepHeld).
type heldSet struct {
	mu   sync.Mutex
	keys map[string]bool
}

// take registers key; false when it is registered already.
func (h *heldSet) take(key string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.keys == nil {
		h.keys = map[string]bool{}
	}
	if h.keys[key] {
		return false
	}
	h.keys[key] = true
	return true
}

// drop forgets key after a while (at once for 0).
func (h *heldSet) drop(key string, after time.Duration) {
	forget := func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.keys, key)
	}
	if after <= 0 {
		forget()
		return
	}
	time.AfterFunc(after, forget)
}
