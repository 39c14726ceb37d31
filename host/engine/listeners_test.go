package engine_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/internal/parttest"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/retry"
	"github.com/trellis-run/trellis/host/vocab"
)

// load loads an app of files (app.json is added) with the listener check, as the host wires it.
func load(t *testing.T, files map[string]string) (*registry.Snapshot, error) {
	t.Helper()
	return registry.Load(host.RegistryOptions(parttest.WriteApp(t, "listeners", files)))
}

// handlers is the code of every listener these tests load.
const handlers = `exports.handle = exports.onEvent = function () {};`

func TestListenersOf(t *testing.T) {
	t.Parallel()
	s, err := load(t, map[string]string{
		"events/Plain/e.json": `{"title": "Plain", "type": "events.NormalType", "sender": "services.X"}`,
		"events/Tuned/e.json": `{"title": "Tuned", "type": "events.NormalType", "sender": "services.*", "handler": "onEvent",
			"handlerType": "broadcast", "broadcastIdentifier": "env:POD", "reliableDelivery": false, "requeueOnError": true,
			"timeout": "5s", "enabled": false, "retry": {"policy": "exponential", "interval": "1s", "maxAttempts": 7},
			"webhook": {"url": "https://example.com/hook", "secret": "k", "mode": "async", "timeout": "3s"}}`,
		"models/Order/e.json":   `{"title": "Order", "type": "models.NormalType", "fields": [{"name": "status", "type": "Stext"}]}`,
		"events/Model/e.json":   `{"title": "Model", "type": "events.ModelType", "model": "models.Order", "fields": ["status"]}`,
		"events/NotMe/e.json":   `{"title": "A Type", "type": "events.Meta", "schema": {}}`,
		"events/Plain/index.js": handlers,
		"events/Tuned/index.js": handlers,
		"events/Model/index.js": handlers,
		"services/Svc/e.json":   `{"title": "Not a listener", "type": "services.NormalType"}`,
		"services/Svc/index.js": `exports.f = function () {};`,
	})
	require.NoError(t, err)
	ls := engine.ListenersOf(s)
	byName := map[string]*engine.Listener{}
	var names []string
	for _, l := range ls {
		byName[l.FullName] = l
		names = append(names, l.FullName)
	}
	require.Equal(t, []string{"events.Model", "events.Plain", "events.Tuned"}, names, "instances on the events.Meta chain, sorted; Types are not listeners")

	require.Equal(t, &engine.Listener{FullName: "events.Plain", EventType: "events.NormalType", Sender: "services.X", Handler: "handle",
		HandlerType: engine.HandlerPool, BroadcastIdentifier: "instance", Reliable: true, Enabled: true, Timeout: 30 * time.Second,
		Retry: retry.Policy{Policy: retry.Default, Interval: 5 * time.Minute, MaxAttempts: 5}}, byName["events.Plain"], "the defaults")

	require.Equal(t, &engine.Listener{FullName: "events.Tuned", EventType: "events.NormalType", Sender: "services.*", Handler: "onEvent",
		HandlerType: engine.HandlerBroadcast, BroadcastIdentifier: "env:POD", RequeueOnError: true, Timeout: 5 * time.Second,
		Retry:   retry.Policy{Policy: retry.Exponential, Interval: time.Second, MaxAttempts: 7, MaxInterval: 64 * time.Second},
		Webhook: &engine.WebhookSpec{URL: "https://example.com/hook", Secret: "k", Async: true, Timeout: 3 * time.Second}}, byName["events.Tuned"])

	m := byName["events.Model"]
	require.Equal(t, "models.Order", m.Model)
	require.Equal(t, "models.Order", m.Sender, "a model listener hears its model")
	require.Equal(t, []string{"afterCreate", "afterUpdate", "afterDelete"}, m.Operate)
	require.Equal(t, []string{"status"}, m.Fields)
	require.Equal(t, engine.ModelEventType, m.EventType)
}

func TestValidateListener(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, def, problem string
	}{
		{"reliable broadcast per instance", `"handlerType": "broadcast"`, "needs a broadcastIdentifier that outlives the process"},
		{"reliable broadcast per host", `"handlerType": "broadcast", "broadcastIdentifier": "host"`, ""},
		{"unreliable broadcast per instance", `"handlerType": "broadcast", "reliableDelivery": false`, ""},
		{"cyclic without a window", `"retry": {"policy": "cyclic", "interval": "1m"}`, "cyclic needs a window"},
		{"exponential capped below its interval", `"retry": {"policy": "exponential", "interval": "1m", "maxInterval": "10s"}`, "shorter than retry.interval"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(t, map[string]string{
				"events/L/e.json":   `{"title": "L", "type": "events.NormalType", "sender": "s", ` + tc.def + `}`,
				"events/L/index.js": handlers,
			})
			if tc.problem == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.problem)
		})
	}
}

// TestSingletonPickIsTheSameOnEveryHost: each host computes the targets of an event on its own;
// for a singleton set they must all pick the same listener, or the event would run twice or never.
func TestSingletonPickIsTheSameOnEveryHost(t *testing.T) {
	t.Parallel()
	files := map[string]string{}
	for _, n := range []string{"A", "B", "C"} {
		files["events/Single"+n+"/e.json"] = `{"title": "S", "type": "events.NormalType", "sender": "s", "handlerType": "singleton"}`
		files["events/Single"+n+"/index.js"] = handlers
	}
	s, err := load(t, files)
	require.NoError(t, err)
	snap := func() *registry.Snapshot { return s }
	hosts := []engine.Options{
		{Snapshot: snap, HostName: "a", InstanceID: "inst_a"},
		{Snapshot: snap, HostName: "b", InstanceID: "inst_b"},
	}
	picked := map[string]int{}
	for range 60 {
		id := vocab.NewID("evt_")
		var first string
		for i, h := range hosts {
			for range 2 {
				ts := engine.TargetsOf(h, engine.SendRequest{Sender: "s", EventType: engine.DefaultEventType}, id)
				require.Len(t, ts, 1)
				if i == 0 && first == "" {
					first = ts[0].FullName
				}
				require.Equal(t, first, ts[0].FullName, "event %s", id)
			}
		}
		picked[first]++
	}
	require.Len(t, picked, 3, "the picks spread over the set: %v", picked)
}

func TestBroadcastIdentity(t *testing.T) {
	t.Setenv("TRELLIS_TEST_POD", "pod-7")
	require.Equal(t, "machine", engine.BroadcastIdentity("host", "machine", "inst_1"))
	require.Equal(t, "inst_1", engine.BroadcastIdentity("instance", "machine", "inst_1"))
	require.Equal(t, "pod-7", engine.BroadcastIdentity("env:TRELLIS_TEST_POD", "machine", "inst_1"))
	require.Equal(t, "broadcast:pod-7", (&engine.Listener{HandlerType: engine.HandlerBroadcast, BroadcastIdentifier: "env:TRELLIS_TEST_POD"}).Group("machine", "inst_1"))
	require.Equal(t, "singleton", (&engine.Listener{HandlerType: engine.HandlerSingleton}).Group("machine", "inst_1"), "a singleton set shares one group")
}

func TestSendResultMap(t *testing.T) {
	t.Parallel()
	res := engine.SendResult{RequestID: "req_1", EventID: "evt_1", NodeIDs: []string{"node_1"}, Subscribers: []string{"events.A"}}
	require.Equal(t, map[string]any{"requestId": "req_1", "eventId": "evt_1", "nodeIds": []any{"node_1"}, "subscribers": []any{"events.A"}}, res.Map(),
		"plain values, as JavaScript receives them; no note when there is none")
	empty := engine.SendResult{RequestID: "req_2", EventID: "evt_2", Note: "no enabled listener"}
	require.Equal(t, map[string]any{"requestId": "req_2", "eventId": "evt_2", "nodeIds": []any{}, "subscribers": []any{}, "note": "no enabled listener"}, empty.Map(),
		"empty lists, never null")
}
