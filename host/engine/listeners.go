package engine

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/trellis-run/trellis/host/lifecycle"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/retry"
)

// Handler types (nameko's SERVICE_POOL, SINGLETON, BROADCAST).
const (
	HandlerPool      = "pool"
	HandlerSingleton = "singleton"
	HandlerBroadcast = "broadcast"
)

// DefaultRetry is the retry policy of a listener whose retry field says nothing: 5 tries, 5
// minutes apart.
var DefaultRetry = retry.Policy{Policy: retry.Default, Interval: 5 * time.Minute, MaxAttempts: 5}

// Listener is an event element as the engine needs it: what it listens to and how it is handled.
type Listener struct {
	FullName string
	// EventType is the listener's own Type ("events.NormalType"); it hears events sent with that
	// type or one of its ancestors on the chain.
	EventType           string
	Sender              string // a fullName, "*" or "prefix.*"
	Handler             string
	HandlerType         string
	BroadcastIdentifier string
	Reliable            bool
	RequeueOnError      bool
	Retry               retry.Policy
	Timeout             time.Duration
	Enabled             bool
	// IgnoreFailure: a ctx.fail ends the node as success/done at once, its reason kept as the
	// row's error (no retry, no node_execute_fail; node_finish runs). Throws are not ignored.
	IgnoreFailure bool
	// Hooks are the hooks the listener runs: with needRunHook, those of lifecycle.Hooks its
	// entry exports.
	Hooks lifecycle.Set
	// Webhook, when set, delivers by HTTP POST instead of running JavaScript.
	Webhook *WebhookSpec
	// Model, Operate and Fields are set on model listeners (events.ModelType): they hear the
	// writes of that model whose operate is listed, and with Fields only writes that changed one
	// of them.
	Model   string
	Operate []string
	Fields  []string
}

// WebhookSpec is a listener's webhook field.
type WebhookSpec struct {
	URL, Secret string
	Async       bool // mode "async": the node waits for POST /api/nodes/{id}/callback
	Timeout     time.Duration
}

// ListenersOf returns every event listener instance of the snapshot, sorted by fullName.
func ListenersOf(s *registry.Snapshot) []*Listener {
	var out []*Listener
	for _, el := range s.Sorted() {
		if el.Layer != registry.LayerInstance || !s.IsA(el.FullName, "events.Meta") {
			continue
		}
		d := el.Definition
		l := &Listener{
			FullName:            el.FullName,
			EventType:           el.Type,
			Sender:              str(d, "sender"),
			Handler:             strOr(d, "handler", "handle"),
			HandlerType:         strOr(d, "handlerType", HandlerPool),
			BroadcastIdentifier: strOr(d, "broadcastIdentifier", "instance"),
			Reliable:            boolOr(d, "reliableDelivery", true),
			RequeueOnError:      boolOr(d, "requeueOnError", false),
			Enabled:             boolOr(d, "enabled", true),
			Timeout:             durationOr(d, "timeout", 30*time.Second),
			IgnoreFailure:       boolOr(d, "ignoreFailure", false),
		}
		if wh, ok := d["webhook"].(map[string]any); !ok || str(wh, "url") == "" {
			l.Hooks = lifecycle.HooksOf(boolOr(d, "needRunHook", false), el.Exports)
		}
		if model := str(d, "model"); model != "" && s.IsA(el.FullName, ModelEventType) {
			l.Model, l.Sender = model, model
			l.Operate = strings_(d["operate"], []string{"afterCreate", "afterUpdate", "afterDelete"})
			l.Fields = strings_(d["fields"], nil)
		}
		l.Retry, _ = retry.Parse(d["retry"], DefaultRetry)
		if wh, ok := d["webhook"].(map[string]any); ok && str(wh, "url") != "" {
			l.Webhook = &WebhookSpec{URL: str(wh, "url"), Secret: str(wh, "secret"), Async: str(wh, "mode") == "async",
				Timeout: durationOr(wh, "timeout", 30*time.Second)}
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].FullName < out[j].FullName })
	return out
}

// Matches reports whether the listener hears an event of eventType from sender.
func (l *Listener) Matches(s *registry.Snapshot, sender, eventType string) bool {
	if !l.Enabled || !senderMatches(l.Sender, sender) {
		return false
	}
	// An event sent as events.NormalType reaches listeners of that Type and of Types built on it.
	return l.EventType == eventType || s.IsA(l.EventType, eventType)
}

// hearsModelWrite reports whether a model listener hears a write: its operate is listed and,
// with Fields, one of them changed. Listeners of other events hear everything Matches allows.
func (l *Listener) hearsModelWrite(req SendRequest) bool {
	if l.Model == "" || req.Operate == "" {
		return true
	}
	if !slices.Contains(l.Operate, req.Operate) {
		return false
	}
	if len(l.Fields) == 0 {
		return true
	}
	for _, f := range req.Changed {
		if slices.Contains(l.Fields, f) {
			return true
		}
	}
	return false
}

// strings_ reads a JSON array of strings, or def when absent.
func strings_(v any, def []string) []string {
	arr, ok := v.([]any)
	if !ok {
		return def
	}
	out := make([]string, 0, len(arr))
	for _, x := range arr {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func senderMatches(pattern, sender string) bool {
	switch {
	case pattern == "*":
		return true
	case strings.HasSuffix(pattern, ".*"):
		return strings.HasPrefix(sender, strings.TrimSuffix(pattern, "*"))
	default:
		return pattern == sender
	}
}

// Topic is the bus topic the listener's deliveries go through: a queue per listener. A
// singleton set needs no shared queue: the sender picks one listener of the set per event
// (the same pick on every host), so exactly one handles it.
func (l *Listener) Topic() string { return "listener:" + l.FullName }

// Group is the consumer group this host joins for the listener: every host shares one group for
// pool and singleton (each event handled once), and has a group of its own for broadcast.
func (l *Listener) Group(hostName, instanceID string) string {
	if l.HandlerType != HandlerBroadcast {
		return l.HandlerType
	}
	return "broadcast:" + BroadcastIdentity(l.BroadcastIdentifier, hostName, instanceID)
}

// BroadcastIdentity names a broadcast receiver: the host's name, this process instance, or the
// value of an environment variable (nameko's broadcast_identifier).
func BroadcastIdentity(identifier, hostName, instanceID string) string {
	switch {
	case identifier == "host":
		return hostName
	case strings.HasPrefix(identifier, "env:"):
		return os.Getenv(strings.TrimPrefix(identifier, "env:"))
	default:
		return instanceID
	}
}

// ValidateListener is the load-time check of the engine's own rules, run by the registry on
// every events.Meta instance so a bad configuration never starts.
func ValidateListener(s *registry.Snapshot, el *registry.Element) []registry.Problem {
	var probs []registry.Problem
	d := el.Definition
	if strOr(d, "handlerType", HandlerPool) == HandlerBroadcast && boolOr(d, "reliableDelivery", true) &&
		strOr(d, "broadcastIdentifier", "instance") == "instance" {
		probs = append(probs, registry.Problem{Message: "a broadcast listener with reliableDelivery on needs a broadcastIdentifier " +
			"that outlives the process (\"host\" or \"env:NAME\"): with the default \"instance\" each restart is a new receiver, " +
			"so events kept for the old one would pile up for ever (nameko refuses this too). Set broadcastIdentifier or reliableDelivery: false"})
	}
	if _, err := retry.Parse(d["retry"], DefaultRetry); err != nil {
		probs = append(probs, registry.Problem{Message: err.Error()})
	}
	return append(probs, lifecycle.CheckHooks(el)...)
}

func str(d map[string]any, k string) string { s, _ := d[k].(string); return s }

func strOr(d map[string]any, k, def string) string {
	if s, ok := d[k].(string); ok && s != "" {
		return s
	}
	return def
}

func boolOr(d map[string]any, k string, def bool) bool {
	if b, ok := d[k].(bool); ok {
		return b
	}
	return def
}

func durationOr(d map[string]any, k string, def time.Duration) time.Duration {
	if s, ok := d[k].(string); ok {
		if v, err := time.ParseDuration(s); err == nil && v > 0 {
			return v
		}
	}
	return def
}

func describeListener(l *Listener) string {
	return fmt.Sprintf("%s (%s, sender %s)", l.FullName, l.HandlerType, l.Sender)
}
