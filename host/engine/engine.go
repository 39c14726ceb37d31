package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/host/execlog"
	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/lifecycle"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/requests"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/host/webhook"
	"github.com/trellis-run/trellis/logstore"
)

// Options configure an Engine. Bus, Executor, Log and Snapshot are required.
type Options struct {
	Bus      bus.Bus
	Executor jsvm.Executor
	// Log makes and writes the log rows (its label must be HostName/InstanceID: execlog.HostLabel).
	Log *execlog.Recorder
	// Snapshot returns the app version to deliver for.
	Snapshot func() *registry.Snapshot
	// HostName names this machine (broadcastIdentifier "host"); InstanceID this process
	// ("instance") and this consumer on the bus. Defaults: os.Hostname and a random id.
	HostName, InstanceID string
	// MaxKwargsBytes caps the JSON size of an event's kwargs (default 1 MiB).
	MaxKwargsBytes int
	// MaxValueDepth caps how deeply an event's kwargs (and a retry's data) may nest, checked
	// before they are encoded or stored (default 64, the host's --max-depth).
	MaxValueDepth int
	// ClaimAfter is how long a delivery may stay unacknowledged on a consumer that stopped
	// heartbeating before another host takes it over (default 30 s).
	ClaimAfter time.Duration
	// Prefetch caps the deliveries a host runs at once per listener (default 128): runs mostly
	// wait on the log's group commit, so many in flight keep both cores busy.
	Prefetch int
	// HeldPrefetch caps the held deliveries (paused nodes, docs/events.md "Operations") a host
	// keeps per listener at once (default 4096). Past it the host moves those it has held longest
	// to the tail of the held queue now and then, so every one is checked in turn.
	HeldPrefetch int
	// Store is the execution log, read for callbacks and resends (the latest state of a node).
	Store logstore.Store
	// LagEvery is how often each listener's backlog is sampled into the log (default 15 s;
	// negative: never). See LagSample.
	LagEvery time.Duration
	// Signals hears the moments of each node (lifecycle.Signal: node_enter, node_finish,
	// node_execute_fail, node_execute_exception, pre/post_callback) and of each request the
	// engine starts (pre/post_prepare_run_pipeline); nil emits none. Signals are app-wide:
	// they are emitted whether or not the listener has needRunHook (docs/hooks.md).
	Signals lifecycle.Emitter
	// Requests tracks each request's unfinished nodes for pipeline_finish (finish.go); nil, or
	// an app with signals off, tracks nothing and emits no pipeline_finish.
	Requests requests.Tracker
	// ControlHorizon is how long a record of the control log (node and request operations) stays
	// on it before the log is compacted past it (controlsnap.go; default 1 h; negative: never).
	ControlHorizon time.Duration
	// RequestTasks applies a request operation — "pause", "resume" or "revoke" — to the
	// request's task nodes (the task center: tasks.Center.RequestOp) and answers the nodes it
	// changed; nil: the host has no task center, a request's operations reach its event nodes
	// only (ops.go).
	RequestTasks func(ctx context.Context, op, requestID string) ([]string, error)
	// Logger hears what the engine recovers from on its own: an unreadable delivery or control
	// record dropped, a request whose pipeline_finish could not be tracked; default
	// slog.Default().
	Logger *slog.Logger
}

// Engine is the event center of one host. Start subscribes to every listener of the current
// app; Reload follows app changes; Stop is safe to call twice.
type Engine struct {
	opts Options

	mu      sync.Mutex
	started bool
	subs    map[string]*listenerSub // by listener fullName
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	// inflight counts the deliveries being handled, for Drain (drain.go).
	inflight runGate

	sent, handled atomic.Int64

	// cached is the listener list of the last snapshot asked for: sendEvent needs it on every
	// call, and walking every element of a large app each time would put that walk on the hot path.
	cached atomic.Pointer[listenerCache]

	// webhooks delivers to public addresses only; webhooksPrivate also to private ones, for
	// apps whose app.json allows it.
	webhooks, webhooksPrivate *webhook.Client

	// control is this host's copy of the control log (control.go); controlSub reads it through
	// reader; controlKeep is this host's share of the keep group, which compacts the log.
	control     *controlTable
	controlSub  bus.Subscription
	controlKeep bus.Subscription
	reader      *controlReader
	// checkpoints are this host's checkpoints awaiting their snapshot (controlsnap.go); snapAt
	// is when the latest one it published was; snapTake serializes taking one.
	snapMu      sync.Mutex
	checkpoints map[string]chan error
	snapTake    sync.Mutex
	snapAt      time.Time
	// heldKeys are the held entries this host keeps (held.go).
	heldKeys heldSet
}

// New checks the options; nothing runs before Start.
func New(opts Options) (*Engine, error) {
	switch {
	case opts.Bus == nil, opts.Executor == nil, opts.Log == nil, opts.Snapshot == nil, opts.Store == nil:
		return nil, errors.New("engine: Options.Bus, Executor, Log, Store and Snapshot are required")
	}
	if opts.HostName == "" {
		opts.HostName = defaultHostName()
	}
	if opts.InstanceID == "" {
		opts.InstanceID = vocab.NewID("inst_")
	}
	if opts.MaxKwargsBytes <= 0 {
		opts.MaxKwargsBytes = 1 << 20
	}
	if opts.MaxValueDepth <= 0 {
		opts.MaxValueDepth = 64
	}
	if opts.ClaimAfter <= 0 {
		opts.ClaimAfter = 30 * time.Second
	}
	if opts.Prefetch <= 0 {
		opts.Prefetch = 128
	}
	if opts.HeldPrefetch <= 0 {
		opts.HeldPrefetch = retryPrefetch
	}
	if opts.LagEvery == 0 {
		opts.LagEvery = 15 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ControlHorizon == 0 {
		opts.ControlHorizon = time.Hour
	}
	return &Engine{opts: opts, subs: map[string]*listenerSub{}, control: newControlTable(), checkpoints: map[string]chan error{},
		webhooks:        webhook.New(webhook.Options{}),
		webhooksPrivate: webhook.New(webhook.Options{AllowPrivate: true})}, nil
}

// Start subscribes to the queues of every enabled listener of the current app.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started {
		return nil
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.inflight.open()
	if err := e.startControl(ctx); err != nil {
		for _, sub := range []bus.Subscription{e.controlSub, e.controlKeep} {
			if sub != nil {
				_ = sub.Close()
			}
		}
		e.cancel()
		e.wg.Wait()
		return err
	}
	e.started = true
	e.wg.Add(1)
	go e.beAlive()
	if e.controlKeep != nil {
		e.wg.Add(1)
		go e.compactControl()
	}
	if e.opts.LagEvery > 0 {
		e.wg.Add(1)
		go e.sampleLag(e.ctx)
	}
	return e.syncLocked(ctx, e.opts.Snapshot())
}

// Reload follows a new app version: new listeners are subscribed, removed or disabled ones
// unsubscribed, changed ones resubscribed.
func (e *Engine) Reload(ctx context.Context, s *registry.Snapshot) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.started || e.inflight.draining() {
		return nil // a draining engine subscribes to nothing again
	}
	err := e.syncLocked(ctx, s)
	// The broadcast listeners this host receives may have changed: say so now (finish.go).
	if aerr := e.publishControl(ctx, controlRec{Op: ctlAlive, Group: e.controlGroup(), Receivers: e.receiverGroups(s)}); aerr != nil && err == nil {
		err = aerr
	}
	return err
}

func (e *Engine) syncLocked(ctx context.Context, s *registry.Snapshot) error {
	want := map[string]*Listener{}
	for _, l := range e.listeners(s) {
		if l.Enabled {
			want[l.FullName] = l
		}
	}
	for name, sub := range e.subs {
		if l, ok := want[name]; !ok || !sameListener(l, sub.listener) {
			sub.close()
			delete(e.subs, name)
		}
	}
	var errs []error
	for name, l := range want {
		if _, ok := e.subs[name]; ok {
			continue
		}
		sub, err := e.subscribe(ctx, l)
		if err != nil {
			errs = append(errs, fmt.Errorf("engine: subscribe %s: %w", describeListener(l), err))
			continue
		}
		e.subs[name] = sub
	}
	return errors.Join(errs...)
}

// Stop unsubscribes and waits for handlers in flight (or ctx). Deliveries not finished stay
// pending on the bus and are taken over by another host.
func (e *Engine) Stop(ctx context.Context) error {
	e.mu.Lock()
	if !e.started {
		e.mu.Unlock()
		return nil
	}
	e.started = false
	for name, sub := range e.subs {
		sub.close()
		delete(e.subs, name)
	}
	if e.controlKeep != nil {
		_ = e.controlKeep.Close() // what it holds stays pending: another host takes it
	}
	if e.controlSub != nil {
		_ = e.controlSub.Close()
		// This instance's group goes with it: the next start reads the log afresh.
		_ = e.opts.Bus.DeleteGroup(ctx, controlTopic, e.controlGroup())
	}
	e.cancel()
	e.mu.Unlock()
	e.webhooks.CloseIdleConnections()
	e.webhooksPrivate.CloseIdleConnections()
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type listenerCache struct {
	snap      *registry.Snapshot
	listeners []*Listener
}

// listeners returns the listeners of s, computed once per snapshot.
func (e *Engine) listeners(s *registry.Snapshot) []*Listener {
	if c := e.cached.Load(); c != nil && c.snap == s {
		return c.listeners
	}
	ls := ListenersOf(s)
	e.cached.Store(&listenerCache{snap: s, listeners: ls})
	return ls
}

// Stats are the engine's counters since Start.
type Stats struct {
	Sent    int64 `json:"sent"`
	Handled int64 `json:"handled"`
}

// Stats reports the counters.
func (e *Engine) Stats() Stats { return Stats{Sent: e.sent.Load(), Handled: e.handled.Load()} }

// Lag reports each listener's backlog on the bus, for /api/health.
func (e *Engine) Lag(ctx context.Context) (map[string][]bus.GroupLag, error) {
	out := map[string][]bus.GroupLag{}
	for _, l := range e.listeners(e.opts.Snapshot()) {
		lag, err := e.opts.Bus.Lag(ctx, l.Topic())
		if err != nil {
			return nil, err
		}
		out[l.FullName] = lag
	}
	return out, nil
}
