package web

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/backends"
)

// listenersApp has a JS listener with retry none, a broadcast one, a webhook listener with a
// secret, and one turned off.
var listenersApp = map[string]string{
	"app.json": `{"name": "lsn"}`,
	"events/OnOrder/e.json": `{"title": "On order", "type": "events.NormalType", "sender": "shop.Orders",
		"retry": {"policy": "none"}, "requeueOnError": true}`,
	"events/OnOrder/index.js": `exports.handle = function (event) {};`,
	"events/Everyone/e.json": `{"title": "Everyone", "type": "events.NormalType", "sender": "shop.*", "handlerType": "broadcast",
		"broadcastIdentifier": "host", "retry": {"policy": "cyclic", "interval": "30s", "window": "1h"}}`,
	"events/Everyone/index.js": `exports.handle = function (event) {};`,
	"events/Hook/e.json": `{"title": "Hook", "type": "events.NormalType", "sender": "shop.Orders", "timeout": "10s",
		"webhook": {"url": "https://example.com/hook", "secret": "s3cret-value", "mode": "async"}}`,
	"events/Off/e.json":    `{"title": "Off", "type": "events.NormalType", "sender": "shop.Orders", "enabled": false}`,
	"events/Off/index.js":  `exports.handle = function (event) {};`,
	"events/Slow/e.json":   `{"title": "Slow", "type": "events.NormalType", "sender": "slow"}`,
	"events/Slow/index.js": `exports.handle = function () { var end = Date.now() + 1500; while (Date.now() < end) {} };`,
}

func TestListenersRoute(t *testing.T) {
	t.Parallel()
	handler := setupApp(t, host.SandboxInProcess, listenersApp, true)
	var body struct {
		Listeners []listenerInfo `json:"listeners"`
		LagError  string         `json:"lagError"`
	}
	list := func() map[string]listenerInfo {
		rec := run(t, handler, scenario{method: "GET", path: "/api/events/listeners", wantStatus: 200})
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
		require.Empty(t, body.LagError)
		by := map[string]listenerInfo{}
		for _, l := range body.Listeners {
			by[l.FullName] = l
		}
		return by
	}
	// Slow takes 1.5 s an event: five sent at once make a backlog the route shows.
	for range 5 {
		run(t, handler, scenario{method: "POST", path: "/api/events/send", body: `{"sender": "slow", "kwargs": {}}`, wantStatus: 200})
	}
	require.Eventually(t, func() bool {
		l := list()["events.Slow"]
		return l.Lag != nil && l.Lag.Pending+l.Lag.Undelivered > 1 && len(l.Lag.Groups) == 1 &&
			l.Lag.Groups[0].Group == "pool" && l.Lag.Groups[0].Consumers > 0
	}, 10*time.Second, 20*time.Millisecond, "Slow's backlog")
	require.Eventually(t, func() bool {
		l := list()["events.Slow"]
		return l.Lag != nil && l.Lag.Pending+l.Lag.Undelivered == 0
	}, 30*time.Second, 100*time.Millisecond, "Slow's backlog drained")

	for _, sc := range []scenario{
		{name: "needs a token", method: "GET", path: "/api/events/listeners", noAuth: true, wantStatus: 401, wantIn: []string{"unauthorized"}},
		{name: "wrong token", method: "GET", path: "/api/events/listeners", token: "nope", wantStatus: 401},
		{name: "lists", method: "GET", path: "/api/events/listeners", wantStatus: 200,
			wantIn: []string{`"fullName":"events.OnOrder"`, `"fullName":"events.Everyone"`, `"fullName":"events.Hook"`, `"url":"https://example.com/hook"`}},
	} {
		t.Run(sc.name, func(t *testing.T) {
			rec := run(t, handler, sc)
			require.NotContains(t, rec.Body.String(), "s3cret-value", "a webhook's secret never leaves the host")
		})
	}

	by := list()
	for _, tc := range []struct {
		name  string
		check func(t *testing.T, l listenerInfo)
	}{
		{"events.OnOrder", func(t *testing.T, l listenerInfo) {
			require.Equal(t, "shop.Orders", l.Sender)
			require.Equal(t, "events.NormalType", l.EventType)
			require.Equal(t, "pool", l.HandlerType)
			require.Equal(t, "handle", l.Handler)
			require.True(t, l.ReliableDelivery)
			require.True(t, l.RequeueOnError)
			require.True(t, l.Enabled)
			require.Equal(t, "none", l.Retry.Policy)
			require.Nil(t, l.Webhook)
			require.Equal(t, "30s", l.Timeout)
			require.NotNil(t, l.Lag)
			require.Zero(t, l.Lag.Pending+l.Lag.Undelivered, "no backlog: %+v", l.Lag)
		}},
		{"events.Everyone", func(t *testing.T, l listenerInfo) {
			require.Equal(t, "shop.*", l.Sender)
			require.Equal(t, "broadcast", l.HandlerType)
			require.Equal(t, "host", l.BroadcastIdentifier)
			require.Equal(t, "cyclic", l.Retry.Policy)
			require.Equal(t, "30s", l.Retry.Interval)
			require.Equal(t, "1h0m0s", l.Retry.Window)
		}},
		{"events.Hook", func(t *testing.T, l listenerInfo) {
			require.Equal(t, &webhookInfo{URL: "https://example.com/hook", Mode: "async", Timeout: "30s"}, l.Webhook)
			require.Equal(t, "10s", l.Timeout)
			require.Equal(t, "default", l.Retry.Policy)
			require.Equal(t, (5 * time.Minute).String(), l.Retry.Interval)
		}},
		{"events.Off", func(t *testing.T, l listenerInfo) {
			require.False(t, l.Enabled)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, ok := by[tc.name]
			require.True(t, ok, "listed: %v", by)
			tc.check(t, l)
		})
	}
	for _, l := range body.Listeners {
		require.NotEqual(t, "events.services.EventSvc", l.FullName, "built-in Types are not listeners")
	}
}

// A host that cannot list its listeners answers 503.
func TestListenersUnavailable(t *testing.T) {
	t.Parallel()
	h, err := host.New(host.Config{AppDir: writeApp(t, listenersApp), Sandbox: host.SandboxInProcess}, backends.Open)
	require.NoError(t, err)
	d := depsOf(h)
	d.App = appOnly{h} // edit_test.go: hides the host's other methods
	srv, err := New(d, Options{Token: testToken})
	require.NoError(t, err)
	run(t, srv.Handler(), scenario{method: "GET", path: "/api/events/listeners", wantStatus: http.StatusServiceUnavailable, wantIn: []string{"unavailable"}})
}
