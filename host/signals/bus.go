package signals

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/trellis-run/trellis/host/bus"
)

// Start subscribes this host to the signals topic (from the newest message: a host reads what
// is emitted while it runs), starts the publisher, and deletes stale groups of hosts gone.
func (c *Center) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started || c.opts.Bus == nil {
		c.started = true
		return nil
	}
	c.sweep(ctx)
	sub, err := c.opts.Bus.Subscribe(ctx, Topic, c.group(), bus.SubscribeOptions{
		Consumer: c.opts.InstanceID, Start: bus.StartNewest, SkipBacklog: true, Prefetch: 1000, ClaimAfter: -1,
	})
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	c.sub, c.cancel, c.started = sub, cancel, true
	c.wg.Add(3)
	go c.readLoop(runCtx, sub)
	go c.publishLoop(runCtx)
	go c.sweepLoop(runCtx)
	return nil
}

// Stop publishes what is queued (until ctx ends), stops reading, deletes this host's group and
// closes the hub (every stream ends).
func (c *Center) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.started {
		return nil
	}
	c.started = false
	defer c.hub.Close()
	if c.opts.Bus == nil {
		return nil
	}
	c.flush(ctx)
	c.cancel()
	_ = c.sub.Close()
	c.wg.Wait()
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := c.opts.Bus.DeleteGroup(dctx, Topic, c.group()); err != nil && !errors.Is(err, bus.ErrClosed) {
		c.opts.Logger.Debug("signals: delete this host's group", "err", err)
	}
	return nil
}

func (c *Center) group() string { return GroupPrefix + c.opts.InstanceID }

// flush waits, until ctx ends, for the publish queue to empty.
func (c *Center) flush(ctx context.Context) {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for len(c.queue) > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// publishLoop sends queued signals to the bus in emission order, as many per Publish as are
// waiting. A failed Publish is retried while the host runs, then dropped with a warning.
func (c *Center) publishLoop(ctx context.Context) {
	defer c.wg.Done()
	for {
		var first []byte
		select {
		case <-ctx.Done():
			return
		case first = <-c.queue:
		}
		msgs := []*bus.Message{{Payload: first}}
	more:
		for len(msgs) < 256 {
			select {
			case p := <-c.queue:
				msgs = append(msgs, &bus.Message{Payload: p})
			default:
				break more
			}
		}
		c.publishBatch(ctx, msgs)
	}
}

func (c *Center) publishBatch(ctx context.Context, msgs []*bus.Message) {
	backoff := 50 * time.Millisecond
	for try := 1; ; try++ {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := c.opts.Bus.Publish(pctx, Topic, msgs...)
		cancel()
		if err == nil {
			return
		}
		if ctx.Err() != nil || errors.Is(err, bus.ErrClosed) || try == 5 {
			c.dropped.Add(int64(len(msgs)))
			c.opts.Logger.Warn("signals: not published; dropped for the stream and other hosts", "signals", len(msgs), "err", err)
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

// readLoop feeds the hub with every signal on the topic, this host's and the others', in bus order.
func (c *Center) readLoop(ctx context.Context, sub bus.Subscription) {
	defer c.wg.Done()
	for d := range sub.Deliveries() {
		m := d.Message()
		var r Record
		if err := json.Unmarshal(m.Payload, &r); err != nil {
			c.opts.Logger.Warn("signals: a message on the signals topic is not a signal; skipped", "id", m.ID, "err", err)
		} else {
			r.ID = m.ID
			c.hub.Add(r)
		}
		_ = d.Ack(ctx)
	}
}

func (c *Center) sweepLoop(ctx context.Context) {
	defer c.wg.Done()
	t := time.NewTicker(c.opts.SweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.sweep(ctx)
		}
	}
}

// sweep deletes the groups of hosts that are gone: on an embedded bus (one process) every other
// host group; on a shared bus those whose backlog passed StaleBacklog (a running host reads
// signals as they come). A group left behind would keep every signal on the topic for ever.
func (c *Center) sweep(ctx context.Context) {
	lags, err := c.opts.Bus.Lag(ctx, Topic)
	if err != nil {
		return
	}
	shared := c.opts.Bus.Features().Shared
	for _, g := range lags {
		if !strings.HasPrefix(g.Group, GroupPrefix) || g.Group == c.group() {
			continue
		}
		if shared && g.Pending+g.Undelivered <= c.opts.StaleBacklog {
			continue
		}
		if err := c.opts.Bus.DeleteGroup(ctx, Topic, g.Group); err == nil {
			c.opts.Logger.Info("signals: deleted the group of a host that is gone", "group", g.Group, "backlog", g.Pending+g.Undelivered)
		}
	}
}
