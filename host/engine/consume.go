package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/host/execlog"
	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/lifecycle"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

// runningRowDelay is how long a run goes before its running row is written on its own.
const runningRowDelay = 50 * time.Millisecond

// retryPrefetch is how many scheduled retries one host holds for one listener at once.
const retryPrefetch = 4096

// listenerSub is this host's subscription to one listener's queue, and to its retry, held and
// callback queues.
type listenerSub struct {
	listener *Listener
	subs     []bus.Subscription
	once     sync.Once
}

func (s *listenerSub) close() {
	s.once.Do(func() {
		for _, sub := range s.subs {
			_ = sub.Close()
		}
	})
}

func retryTopic(l *Listener) string { return "retry:" + l.Topic() }

func (e *Engine) subscribe(ctx context.Context, l *Listener) (*listenerSub, error) {
	ls := &listenerSub{listener: l}
	opts := bus.SubscribeOptions{Consumer: e.opts.InstanceID, Start: bus.StartOldest, Prefetch: e.opts.Prefetch, ClaimAfter: e.opts.ClaimAfter}
	if !l.Reliable {
		opts.Start, opts.SkipBacklog = bus.StartNewest, true
		opts.Skipped = func(msgs []*bus.Message) { e.dropped(ctx, l, msgs) }
	}
	sub, err := e.opts.Bus.Subscribe(ctx, l.Topic(), l.Group(e.opts.HostName, e.opts.InstanceID), opts)
	if err != nil {
		return nil, err
	}
	ls.subs = append(ls.subs, sub)
	fns := []deliveryFunc{e.consume(l)}
	if l.HandlerType != HandlerBroadcast {
		// Scheduled retries wait on a queue of their own, held by whichever host took them,
		// so they survive restarts without occupying the listener's prefetch.
		rs, err := e.opts.Bus.Subscribe(ctx, retryTopic(l), "pump", bus.SubscribeOptions{
			Consumer: e.opts.InstanceID, Start: bus.StartOldest, Prefetch: retryPrefetch, ClaimAfter: e.opts.ClaimAfter})
		if err != nil {
			ls.close()
			return nil, err
		}
		ls.subs = append(ls.subs, rs)
		fns = append(fns, e.pumpRetries(l))
	}
	// Held deliveries (paused nodes) wait on a queue of their own too (held.go).
	hs, err := e.opts.Bus.Subscribe(ctx, e.heldTopic(l), heldGroup, bus.SubscribeOptions{
		Consumer: e.opts.InstanceID, Start: bus.StartOldest, Prefetch: e.opts.HeldPrefetch, ClaimAfter: e.opts.ClaimAfter})
	if err != nil {
		ls.close()
		return nil, err
	}
	ls.subs = append(ls.subs, hs)
	fns = append(fns, e.pumpHeld(l))
	cs, err := e.opts.Bus.Subscribe(ctx, callbackTopic(l), "deadline", bus.SubscribeOptions{
		Consumer: e.opts.InstanceID, Start: bus.StartOldest, Prefetch: retryPrefetch, ClaimAfter: e.opts.ClaimAfter})
	if err != nil {
		ls.close()
		return nil, err
	}
	ls.subs = append(ls.subs, cs)
	fns = append(fns, e.watchCallbacks(l))
	e.wg.Add(1)
	go e.serve(ls.subs, fns)
	return ls, nil
}

// deliveryFunc takes one delivery of one of a listener's subscriptions. It must not block: what
// waits (a handler, a due time) runs in a goroutine of its own.
type deliveryFunc func(bus.Delivery)

// serve hands the deliveries of a listener's subscriptions (at most four) to their functions,
// in one goroutine for all of them, until every subscription has ended: an idle host runs one
// goroutine per listener, not one per subscription (1,000 listeners were 4,000 goroutines,
// 9 MB of stacks, issue 13).
func (e *Engine) serve(subs []bus.Subscription, fns []deliveryFunc) {
	defer e.wg.Done()
	var chs [4]<-chan bus.Delivery
	for i, s := range subs {
		chs[i] = s.Deliveries()
	}
	for open := len(subs); open > 0; {
		var d bus.Delivery
		var ok bool
		var i int
		select {
		case d, ok = <-chs[0]:
		case d, ok = <-chs[1]:
			i = 1
		case d, ok = <-chs[2]:
			i = 2
		case d, ok = <-chs[3]:
			i = 3
		}
		if !ok {
			chs[i] = nil
			open--
			continue
		}
		fns[i](d)
	}
}

// dropped ends the nodes of messages a non-reliable listener's queue skipped as it subscribed
// (they arrived while no host ran it) as fail/dropped, so none keeps its queued row for ever. A
// broadcast's node is not this receiver's to end (others ran it): only this receiver's child node
// is closed for pipeline_finish — it has no row to end, as a receiver's node has none before it
// runs.
func (e *Engine) dropped(ctx context.Context, l *Listener, msgs []*bus.Message) {
	now := time.Now()
	rows := make([]logstore.Row, 0, len(msgs))
	var ended []envelope
	for _, m := range msgs {
		var env envelope
		if json.Unmarshal(m.Payload, &env) != nil || env.NodeID == "" {
			continue
		}
		if l.HandlerType == HandlerBroadcast {
			if e.receiveBroadcast(ctx, l, &env) {
				e.closeNode(ctx, env.RequestID, env.NodeID)
			}
			continue
		}
		r := e.row(&env, logstore.StatusFail, logstore.StageDropped, now)
		r.Error = &logstore.RowError{Code: logstore.StageDropped, Message: fmt.Sprintf(
			"%s has reliableDelivery off and no host ran it when the event was sent; the event was dropped (resend runs it)", l.FullName)}
		rows = append(rows, r)
		ended = append(ended, env)
	}
	e.writeRows(ctx, rows...)
	for _, env := range ended {
		e.closeNode(ctx, env.RequestID, env.NodeID)
	}
}

// consume runs each delivery of l's queue to its end, in a goroutine of its own.
func (e *Engine) consume(l *Listener) deliveryFunc {
	return func(d bus.Delivery) {
		if !e.inflight.enter() {
			return // draining: left unacknowledged, it stays pending for the next host
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			defer e.inflight.exit()
			e.handle(l, d)
		}()
	}
}

// holdUntilDue runs due(env) for each delivery of a queue of scheduled envelopes (retries,
// callback deadlines), in a goroutine of its own, once its NotBefore has come, and acks or
// nacks it by what due says. Deliveries still held when the engine stops stay pending: another
// host, or the next start, takes them.
func (e *Engine) holdUntilDue(due func(env *envelope) error) deliveryFunc {
	return func(d bus.Delivery) {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			var env envelope
			if err := json.Unmarshal(d.Message().Payload, &env); err != nil {
				_ = d.Ack(e.ctx)
				return
			}
			if !sleepUntil(e.ctx, env.NotBefore) {
				return
			}
			if err := due(&env); err != nil {
				_ = d.Nack(e.ctx)
				return
			}
			_ = d.Ack(e.ctx)
		}()
	}
}

// pumpRetries puts each scheduled retry back on the listener's queue when it is due.
func (e *Engine) pumpRetries(l *Listener) deliveryFunc {
	return e.holdUntilDue(func(env *envelope) error {
		env.NotBefore = time.Time{}
		payload, _ := json.Marshal(env)
		_, err := e.opts.Bus.Publish(e.ctx, l.Topic(), &bus.Message{Payload: payload})
		return err
	})
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	wait := time.Until(t)
	if wait <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// handle runs one delivery to its end: success, a scheduled retry, a requeue, or a dead letter.
func (e *Engine) handle(l *Listener, d bus.Delivery) {
	ctx := e.ctx
	var env envelope
	if err := json.Unmarshal(d.Message().Payload, &env); err != nil {
		e.opts.Logger.Error("engine: dropping an unreadable delivery", "topic", l.Topic(), "err", err)
		_ = d.Ack(ctx)
		return
	}
	if l.HandlerType == HandlerBroadcast {
		if !e.receiveBroadcast(ctx, l, &env) {
			_ = d.Ack(ctx)
			return
		}
	}
	if l.RequeueOnError {
		env.Attempt += d.Deliveries() - 1
	}
	// A paused, skipped, force-failed or revoked node does not run (control.go); a paused one
	// waits on the held queue, not in this listener's prefetch (held.go).
	switch e.gate(ctx, &env) {
	case verdictDrop:
		_ = d.Ack(ctx)
		return
	case verdictHold:
		if err := e.hold(ctx, l, &env); err != nil {
			_ = d.Nack(context.Background())
			return
		}
		_ = d.Ack(ctx)
		return
	}
	if n := d.Deliveries(); n > 1 && !l.RequeueOnError {
		if !e.interrupted(ctx, l, &env, n-1) {
			_ = d.Ack(ctx)
			return
		}
	}
	for {
		if env.FirstTry.IsZero() {
			env.FirstTry = time.Now()
		}
		retryIn, final := e.run(ctx, l, &env)
		switch {
		case final == outcomeStopping:
			_ = d.Nack(context.Background())
			return
		case final != outcomeRetry:
			_ = d.Ack(ctx)
			e.handled.Add(1)
			return
		case l.RequeueOnError:
			_ = d.Nack(ctx)
			return
		case l.HandlerType == HandlerBroadcast:
			// A broadcast retry stays with this host: hold the delivery and run again.
			env.Attempt++
			if !sleepUntil(ctx, time.Now().Add(retryIn)) {
				return
			}
		default:
			next := env
			next.Attempt++
			next.NotBefore = time.Now().Add(retryIn)
			payload, _ := json.Marshal(&next)
			if _, err := e.opts.Bus.Publish(ctx, retryTopic(l), &bus.Message{Payload: payload}); err != nil {
				_ = d.Nack(ctx) // the retry could not be scheduled: run it again from the queue
				return
			}
			_ = d.Ack(ctx)
			return
		}
	}
}

// maxInterruptions is how many more deliveries than its retry policy's tries a message may
// have before it is dead-lettered unrun: a message that every host taking it dies on (a handler
// that crashes its host) must not take the cluster down in turn for ever.
const maxInterruptions = 3

// interrupted records that a redelivered message's previous delivery was handed to a host that
// stopped or died before it acknowledged it — mid-run or before the run began — as an
// interrupted attempt, so a node that ran twice shows twice, and numbers this delivery as the
// next attempt (the n-th delivery is attempt n; each earlier one was recorded by the delivery
// after it). It reports false when the message was interrupted too often to run again: it is
// dead-lettered (resend runs it again).
func (e *Engine) interrupted(ctx context.Context, l *Listener, env *envelope, earlier int) bool {
	env.Attempt += earlier - 1
	r := e.row(env, logstore.StatusFail, logstore.StageInterrupted, time.Now())
	r.Error = &logstore.RowError{Code: logstore.StageInterrupted, Message: fmt.Sprintf(
		"attempt %d was handed to a host that stopped or died before it ended; attempt %d runs it again", env.Attempt, env.Attempt+1)}
	env.Attempt++
	if limit := max(l.Retry.MaxAttempts, 1) + maxInterruptions; env.Attempt > limit {
		r.Stage = logstore.StageDeadLettered
		r.Error.Message = fmt.Sprintf("delivered %d times and never acknowledged: every host that took it stopped or died "+
			"(more than the %d tries of its retry policy + %d); dead-lettered without running it again — resend runs it",
			earlier+1, max(l.Retry.MaxAttempts, 1), maxInterruptions)
		e.writeRows(ctx, r)
		e.closeNode(ctx, env.RequestID, env.NodeID)
		return false
	}
	e.writeRows(ctx, r)
	return true
}

type outcome int

const (
	outcomeDone outcome = iota
	outcomeRetry
	outcomeStopping
)

// run executes the handler once and records the result; it says whether to retry and when. The
// listener's hooks run around the handler and the node's signals are emitted (docs/hooks.md):
// node_enter before it, then node_finish, node_execute_fail or node_execute_exception; the hooks'
// rows are written with the node's own.
func (e *Engine) run(ctx context.Context, l *Listener, env *envelope) (time.Duration, outcome) {
	start := time.Now()
	// The running row is written with the final one when the run is short, halving the log
	// writes of the common case; a run that lasts shows as running after runningRowDelay.
	running := e.row(env, logstore.StatusRunning, logstore.StageRunning, start)
	runningWritten := make(chan struct{})
	timer := time.AfterFunc(runningRowDelay, func() {
		e.writeRows(ctx, running)
		close(runningWritten)
	})
	pending := []logstore.Row{}
	var res jsvm.Result
	var err error
	flushRunning := func() {
		if timer.Stop() {
			pending = append(pending, running)
		} else {
			<-runningWritten
		}
	}
	// hook runs hook t of the listener with data. A hook that fails has a row of its own, written
	// with the node's; one that succeeds has none: what it printed joins the node's row (before
	// the handler's output for node_enter, after it for the others).
	var hookRows []logstore.Row
	var logsBefore, logsAfter []jsvm.LogEntry
	var finished map[string]any // data as node_finish left it, when it ran with the handler
	hook := func(t lifecycle.Type, data map[string]any) map[string]any {
		out, r, logs := e.runHook(ctx, l, env, t, data, false)
		if r.ID != "" {
			hookRows = append(hookRows, r)
		}
		if t == lifecycle.NodeEnter {
			logsBefore = append(logsBefore, logs...)
		} else {
			logsAfter = append(logsAfter, logs...)
		}
		return out
	}
	withHookLogs := func(r *logstore.Row) {
		if len(logsBefore)+len(logsAfter) > 0 {
			all := append(append(append([]jsvm.LogEntry{}, logsBefore...), res.Logs...), logsAfter...)
			r.Logs, _ = json.Marshal(all)
		}
	}
	// The handler runs under a context of its own: a forcedFail of the node, from any host,
	// cancels it (control.go).
	runCtx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	e.control.startRun(env, cancelRun)
	defer e.control.endRun(env)
	if l.Webhook != nil {
		e.signal(ctx, lifecycle.NodeEnter, env, exData(""))
		res, err = e.deliverWebhook(runCtx, l, env)
	} else {
		// node_enter (which may change data.kwargs, and the handler receives what it left) and
		// node_finish run with the handler in one Execute.
		event := env.event()
		around := e.around(l, env, event["kwargs"])
		e.signal(ctx, lifecycle.NodeEnter, env, exData(""))
		res, err = e.opts.Executor.Execute(runCtx, jsvm.Call{
			Element: l.FullName, Function: l.Handler, Args: []any{event},
			Limits: jsvm.Limits{Timeout: l.Timeout}, RequestID: env.RequestID, NodeID: env.NodeID,
			Ctx: &jsvm.HandlerContext{Attempt: env.Attempt}, Around: around,
		})
		for _, o := range res.Hooks {
			switch lifecycle.Type(o.Function) {
			case lifecycle.NodeEnter:
				_, r, logs := e.aroundDone(l, env, around.Before, o, nil)
				if r.ID != "" {
					hookRows = append(hookRows, r)
				}
				logsBefore = append(logsBefore, logs...)
			case lifecycle.NodeFinish:
				out, r, logs := e.aroundDone(l, env, around.After, o, res.Value)
				if r.ID != "" {
					hookRows = append(hookRows, r)
				}
				logsAfter = append(logsAfter, logs...)
				finished = out
			}
		}
	}
	end := time.Now()
	if ctx.Err() == nil && context.Cause(runCtx) == errForcedFail {
		// forcedFail recorded the node's end: the running row goes only if it is out already.
		if !timer.Stop() {
			<-runningWritten
		}
		e.writeRows(ctx, hookRows...)
		return 0, outcomeDone
	}
	flushRunning()
	if ctx.Err() != nil {
		e.writeRows(context.Background(), append(pending, hookRows...)...)
		return 0, outcomeStopping
	}
	ignored := err == nil && res.Failed != nil && l.IgnoreFailure
	if err == nil && (res.Failed == nil || ignored) {
		status, stage := logstore.StatusSuccess, logstore.StageDone
		if res.WaitCallback && !ignored {
			status, stage = logstore.StatusRunning, logstore.StageAwaitingCallback
			if werr := e.awaitCallback(ctx, l, env, end); werr != nil {
				err = werr // the deadline could not be recorded: fail the try rather than wait for ever
			}
		}
		if err == nil {
			r := e.row(env, status, stage, end)
			execlog.Finish(&r, start, end, res, nil)
			if res.WaitCallback && !ignored {
				r.EndTime, r.Duration = time.Time{}, 0
			} else {
				// The node ended well (with ignoreFailure, a ctx.fail counts as that: the row
				// keeps the reason as its error). node_finish may change data.result: it is
				// what the row saves.
				if l.Hooks.Has(lifecycle.NodeFinish) {
					out := finished // it ran with the handler, unless the handler's failure was ignored
					if out == nil {
						data := nodeData(env, decoded(env.Kwargs))
						data["result"], data["error"] = res.Value, errorData(r.Error)
						out = hook(lifecycle.NodeFinish, data)
					}
					if !ignored {
						if b, merr := vocab.EncodeJSON(out["result"]); merr == nil {
							r.Result = b
						}
					}
				}
				e.signal(ctx, lifecycle.NodeFinish, env, nil)
			}
			withHookLogs(&r)
			if r.Status == logstore.StatusSuccess {
				e.writeEnd(ctx, append(append(pending, hookRows...), r), env.RequestID, env.NodeID)
			} else {
				e.writeRows(ctx, append(append(pending, hookRows...), r)...)
			}
			return 0, outcomeDone
		}
	}
	var retryIn time.Duration
	again := false
	if l.RequeueOnError {
		again = env.Attempt < l.Retry.MaxAttempts
	} else {
		retryIn, again = l.Retry.Next(env.Attempt, env.FirstTry, end)
	}
	r := e.row(env, logstore.StatusFail, logstore.StageDeadLettered, end)
	if again {
		r.Status, r.Stage = logstore.StatusWaiting, logstore.StageRetryScheduled
		if l.RequeueOnError {
			r.Stage = logstore.StageRequeued
		}
	}
	re := execlog.Finish(&r, start, end, res, err)
	// ctx.fail is a failure (node_execute_fail); a throw, a timeout or a failed webhook an
	// exception (node_execute_exception). Either hook may change data.error.message.
	moment, sig := lifecycle.NodeExecuteException, exData(re.Message)
	if err == nil && res.Failed != nil {
		moment, sig = lifecycle.NodeExecuteFail, nil
	}
	if l.Hooks.Has(moment) {
		data := nodeData(env, decoded(env.Kwargs))
		data["error"] = errorData(re)
		keepErrorMessage(re, hook(moment, data))
	}
	e.signal(ctx, moment, env, sig)
	withHookLogs(&r)
	if again {
		e.writeRows(ctx, append(append(pending, hookRows...), r)...)
		return retryIn, outcomeRetry
	}
	e.writeEnd(ctx, append(append(pending, hookRows...), r), env.RequestID, env.NodeID)
	return 0, outcomeDone
}

// decoded is a node's kwargs as plain values (integers kept exact), for hook data.
func decoded(kwargs json.RawMessage) any {
	v, _ := vocab.DecodeJSON(kwargs)
	return v
}

func shortHash(s string) string {
	var h uint32 = 2166136261
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return fmt.Sprintf("%08x", h)
}
