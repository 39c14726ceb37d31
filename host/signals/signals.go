// Package signals is the receiving side of the engine's signals (CONTRACT §5, docs/signals.md):
// the lifecycle.Emitter the engine and the task center announce node and request moments to.
//
// When the current app version has "signals": {"enabled": true}, each emitted signal
//   - runs, synchronously and in order, every enabled signals.Meta instance whose eventTypes
//     filter (empty: all) holds its type: exports[handler](eventType, data), each call bounded by
//     the receiver's timeout (default 5 s); each call is one row of the execution log (kind
//     "signal", a child of the signal's node in its request), and one that throws or times out
//     also a slog warning, and changes nothing for the announcer;
//   - is published to the bus topic "signals" (on Redis the one stream trellis:<app>:signals
//     every host reads), which gives it its id, and reaches, through every host's subscription
//     to that topic, the host's Hub; without a bus (the host passes none on embedded storage,
//     where it is the only host) it goes to the Hub at once, with an id of the same form made
//     here;
//   - the Hub is what the SSE stream GET /api/signals/stream reads; it keeps the last
//     Options.Buffer signals for clients resuming with Last-Event-ID.
//
// Publishing is asynchronous, in emission order, behind a bounded queue: a slow or failed bus
// costs the announcer nothing (a full queue drops the signal for the stream and says so in the
// log), and JS receivers never wait for the bus.
package signals

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/host/execlog"
	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/lifecycle"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

const (
	// Topic is the bus topic of signals (Redis key <prefix>signals).
	Topic = "signals"
	// GroupPrefix starts the consumer group of each host on Topic; groups named otherwise (an
	// outside consumer's) are never touched.
	GroupPrefix = "host:"
	// KindSignal is the kind of the log row of a receiver call.
	KindSignal = "signal"
	// MetaSignals is the Meta of receivers.
	MetaSignals = "signals.Meta"
	// DefaultTimeout bounds a receiver call whose element says nothing.
	DefaultTimeout = 5 * time.Second
	// DefaultBuffer is how many signals a hub keeps for Last-Event-ID.
	DefaultBuffer = 10000
	// DefaultQueue is how many signals may wait to be published.
	DefaultQueue = 8192
)

// Record is a signal as the bus carries it and the stream sends it: the signal, its bus id and
// the host that emitted it.
type Record struct {
	ID string `json:"id"`
	lifecycle.Signal
	Host string `json:"host,omitempty"`
}

// Options configure a Center. Snapshot is required; Executor runs JS receivers (nil: none run);
// Bus carries signals to every host (nil: the hub is fed directly, ids counted locally).
type Options struct {
	Snapshot func() *registry.Snapshot
	Executor jsvm.Executor
	Bus      bus.Bus
	// Log writes the row of each receiver call (nil: none; failures still go to slog). Its host
	// label names the emitting host on each Record.
	Log *execlog.Recorder
	// InstanceID names this host's consumer group (GroupPrefix + InstanceID); default a random id.
	InstanceID string
	// Buffer is the hub's size (default DefaultBuffer); Queue the publish queue's (DefaultQueue).
	Buffer, Queue int
	// StaleBacklog: on a shared bus (Redis), another host's group with more signals than this
	// pending or undelivered is a dead host's and is deleted, so the stream can be trimmed
	// (default 10 × Buffer). On an embedded bus every other host group is stale.
	StaleBacklog int64
	// SweepEvery is how often stale groups are looked for (default 1 minute).
	SweepEvery time.Duration
	Logger     *slog.Logger
}

// Center is the Emitter of one host, its bus publisher and subscriber, and its Hub.
type Center struct {
	opts  Options
	hub   *Hub
	queue chan []byte
	host  string

	cached atomic.Pointer[receiverCache]

	mu      sync.Mutex
	started bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	sub     bus.Subscription
	// Without a bus, ids are made here: localMs-localSeq, of the form of a Redis stream id and
	// increasing across restarts (a client resuming with an id from before one gets a gap).
	idMu     sync.Mutex
	localMs  int64
	localSeq uint64

	dropped atomic.Int64
}

// New checks the options; nothing runs before Start.
func New(opts Options) (*Center, error) {
	if opts.Snapshot == nil {
		return nil, errors.New("signals: Options.Snapshot is required")
	}
	if opts.InstanceID == "" {
		opts.InstanceID = vocab.NewID("inst_")
	}
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultBuffer
	}
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	if opts.StaleBacklog <= 0 {
		opts.StaleBacklog = 10 * int64(opts.Buffer)
	}
	if opts.SweepEvery <= 0 {
		opts.SweepEvery = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Center{opts: opts, hub: NewHub(opts.Buffer), queue: make(chan []byte, opts.Queue)}
	if opts.Log != nil {
		c.host = opts.Log.Host()
	}
	return c, nil
}

// Hub is what the SSE stream reads.
func (c *Center) Hub() *Hub { return c.hub }

// Dropped counts signals the full publish queue dropped.
func (c *Center) Dropped() int64 { return c.dropped.Load() }

// Enabled reports whether the current app version emits signals.
func (c *Center) Enabled() bool {
	s := c.opts.Snapshot()
	return s != nil && s.App.Signals.Enabled
}

// Emit hands s to every receiver: the JS receivers now, one after the other, each within its
// timeout; the bus (and so every host's stream) through the publish queue. It does nothing when
// the app has signals off. Nothing a receiver does changes what the announcer does next.
func (c *Center) Emit(ctx context.Context, s lifecycle.Signal) {
	snap := c.opts.Snapshot()
	if snap == nil || !snap.App.Signals.Enabled {
		return
	}
	if s.At.IsZero() {
		s.At = time.Now()
	}
	if s.Data == nil {
		s.Data = map[string]any{}
	}
	if c.opts.Bus == nil {
		// One host and no bus: straight to the hub. The JSON is made only for a receiver that
		// hears it (and by the stream, for its clients).
		c.hub.Add(Record{ID: c.nextLocalID(), Signal: s, Host: c.host})
		c.runReceivers(ctx, snap, s, nil)
		return
	}
	payload, err := json.Marshal(Record{Signal: s, Host: c.host})
	if err != nil {
		c.opts.Logger.Error("signals: a signal's data is not JSON; dropped", "event_type", s.Type, "err", err)
		return
	}
	c.publish(payload)
	c.runReceivers(ctx, snap, s, payload)
}

// nextLocalID is the id of the next signal of a Center without a bus (see localMs).
func (c *Center) nextLocalID() string {
	c.idMu.Lock()
	defer c.idMu.Unlock()
	if ms := time.Now().UnixMilli(); ms > c.localMs {
		c.localMs, c.localSeq = ms, 0
	} else {
		c.localSeq++ // same millisecond, or the clock stepped back: stay in order
	}
	return strconv.FormatInt(c.localMs, 10) + "-" + strconv.FormatUint(c.localSeq, 10)
}

// publish queues the signal for the bus.
func (c *Center) publish(payload []byte) {
	select {
	case c.queue <- payload:
	default:
		if n := c.dropped.Add(1); n == 1 || n%1000 == 0 {
			c.opts.Logger.Warn("signals: the publish queue is full (the bus is slow or down); signals are dropped for the stream and other hosts",
				"dropped", n, "queue", c.opts.Queue)
		}
	}
}

// receiver is a signals.Meta instance as Emit needs it.
type receiver struct {
	FullName   string
	Handler    string
	EventTypes []string // empty: every type
	Timeout    time.Duration
}

func (r *receiver) hears(t lifecycle.Type) bool {
	return len(r.EventTypes) == 0 || slices.Contains(r.EventTypes, string(t))
}

type receiverCache struct {
	snap      *registry.Snapshot
	receivers []*receiver
}

// receiversOf lists the enabled receivers of s, sorted by fullName: the order they are called in.
func receiversOf(s *registry.Snapshot) []*receiver {
	var out []*receiver
	for _, el := range s.Sorted() {
		if el.Layer != registry.LayerInstance || !s.IsA(el.FullName, MetaSignals) {
			continue
		}
		d := el.Definition
		if on, ok := d["enabled"].(bool); ok && !on {
			continue
		}
		r := &receiver{FullName: el.FullName, Handler: "receive", Timeout: DefaultTimeout}
		if h, ok := d["handler"].(string); ok && h != "" {
			r.Handler = h
		}
		if ts, ok := d["timeout"].(string); ok {
			if v, err := time.ParseDuration(ts); err == nil && v > 0 {
				r.Timeout = v
			}
		}
		if list, ok := d["eventTypes"].([]any); ok {
			for _, x := range list {
				if t, ok := x.(string); ok {
					r.EventTypes = append(r.EventTypes, t)
				}
			}
		}
		out = append(out, r)
	}
	return out
}

func (c *Center) receivers(s *registry.Snapshot) []*receiver {
	if rc := c.cached.Load(); rc != nil && rc.snap == s {
		return rc.receivers
	}
	rs := receiversOf(s)
	c.cached.Store(&receiverCache{snap: s, receivers: rs})
	return rs
}

// callGrace is how much longer than a receiver's timeout Emit waits for the sandbox to answer
// (a busy worker pool, a worker being replaced) before it gives up on the call.
const callGrace = time.Second

// runReceivers calls the JS receivers that hear s, in order; payload is the signal's JSON when
// it was made already (for the bus), else nil.
func (c *Center) runReceivers(ctx context.Context, snap *registry.Snapshot, s lifecycle.Signal, payload []byte) {
	if c.opts.Executor == nil {
		return
	}
	var data any
	for _, r := range c.receivers(snap) {
		if !r.hears(s.Type) {
			continue
		}
		if data == nil {
			// The receiver gets the data as JSON would carry it (exact integers, plain values).
			var raw []byte
			if payload != nil {
				var rec struct {
					Data json.RawMessage `json:"data"`
				}
				_ = json.Unmarshal(payload, &rec)
				raw = rec.Data
			} else if b, err := json.Marshal(s.Data); err == nil {
				raw = b
			}
			if data, _ = vocab.DecodeJSON(raw); data == nil {
				data = map[string]any{}
			}
		}
		c.call(ctx, r, s, data)
	}
}

func (c *Center) call(ctx context.Context, r *receiver, s lifecycle.Signal, data any) {
	cctx, cancel := context.WithTimeout(ctx, r.Timeout+callGrace)
	defer cancel()
	start := time.Now()
	res, err := c.opts.Executor.Execute(cctx, jsvm.Call{
		Element: r.FullName, Function: r.Handler, Args: []any{string(s.Type), data},
		Limits: jsvm.Limits{Timeout: r.Timeout}, RequestID: s.RequestID,
	})
	end := time.Now()
	if err != nil && cctx.Err() != nil && ctx.Err() == nil {
		err = &jsvm.Error{Code: jsvm.CodeTimeout, Message: "the signal receiver did not answer within its timeout " + r.Timeout.String()}
	}
	failed := err != nil || res.Failed != nil
	if failed {
		c.warn(r, s, err, res)
	}
	if c.opts.Log == nil {
		return
	}
	kwargs, _ := json.Marshal(map[string]any{"event_type": s.Type, "data": data})
	status, stage := logstore.StatusSuccess, logstore.StageDone
	if failed {
		status, stage = logstore.StatusFail, logstore.StageFailed
	}
	row := c.opts.Log.Row(execlog.Node{
		Kind: KindSignal, FullName: r.FullName, Sender: s.Element, EventType: string(s.Type),
		RequestID: s.RequestID, NodeID: vocab.NewID("node_"), ParentNodeID: s.NodeID, CreatedAt: start, Kwargs: kwargs,
	}, status, stage, end)
	execlog.Finish(&row, start, end, res, err)
	c.opts.Log.Write(context.WithoutCancel(ctx), row)
}

func (c *Center) warn(r *receiver, s lifecycle.Signal, err error, res jsvm.Result) {
	msg := ""
	if err != nil {
		msg = err.Error()
	} else if res.Failed != nil {
		msg = *res.Failed
	}
	c.opts.Logger.Warn("signals: a receiver failed; the signal goes on", "receiver", r.FullName, "event_type", s.Type,
		"requestId", s.RequestID, "nodeId", s.NodeID, "err", msg)
}
