package host_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/webhook"
	"github.com/trellis-run/trellis/logstore"
)

func webhookApp(url string, allowPrivate bool) map[string]string {
	return map[string]string{
		"app.json": fmt.Sprintf(`{"name": "wh", "webhooks": {"allowPrivateNetwork": %v}}`, allowPrivate),
		"events/Sync/e.json": fmt.Sprintf(`{"title": "Sync hook", "type": "events.NormalType", "sender": "shop",
			"retry": {"policy": "none"}, "webhook": {"url": %q, "secret": "s3cret", "mode": "sync"}}`, url+"/sync"),
		"events/Async/e.json": fmt.Sprintf(`{"title": "Async hook", "type": "events.NormalType", "sender": "shop", "timeout": "10s",
			"retry": {"policy": "none"}, "webhook": {"url": %q, "mode": "async"}}`, url+"/async"),
		"events/Broken/e.json": fmt.Sprintf(`{"title": "Answers 500", "type": "events.NormalType", "sender": "shop",
			"retry": {"policy": "default", "interval": "20ms", "maxAttempts": 2}, "webhook": {"url": %q}}`, url+"/broken"),
	}
}

func TestWebhookSubscribers(t *testing.T) {
	t.Parallel()
	var verified, broken atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/sync":
			if webhook.Verify("s3cret", r.Header.Get(webhook.HeaderSignature), body, time.Minute, time.Now()) == nil &&
				r.Header.Get(webhook.HeaderEventID) != "" {
				verified.Add(1)
			}
			_, _ = w.Write([]byte(`{"ok": true}`))
		case "/async":
			w.WriteHeader(http.StatusAccepted)
		default:
			broken.Add(1)
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	h := setup(t, host.Config{Sandbox: host.SandboxInProcess, ServeEvents: true}, webhookApp(srv.URL, true))
	res, err := h.SendEvent(context.Background(), engine.SendRequest{Sender: "shop", Kwargs: map[string]any{"order": int64(1)}})
	require.NoError(t, err)
	ctx := context.Background()
	var nodes map[string]logstore.Row
	require.Eventually(t, func() bool {
		require.NoError(t, h.LogWriter().Flush(ctx))
		rows, err := h.LogStore().ByRequest(ctx, res.RequestID)
		require.NoError(t, err)
		nodes = map[string]logstore.Row{}
		for _, r := range rows {
			nodes[r.FullName] = r
		}
		return nodes["events.Sync"].Status == logstore.StatusSuccess && nodes["events.Async"].Stage == "awaitingCallback" &&
			nodes["events.Broken"].Status == logstore.StatusFail
	}, 30*time.Second, 20*time.Millisecond)
	require.EqualValues(t, 1, verified.Load(), "the POST is signed and carries the event id")
	require.JSONEq(t, `{"ok": true}`, string(nodes["events.Sync"].Result))
	require.EqualValues(t, 2, broken.Load(), "a non-2xx answer is retried by the policy")
	require.Equal(t, "webhook_status", nodes["events.Broken"].Error.Code)

	_, err = h.Callback(ctx, nodes["events.Async"].NodeID, map[string]any{"done": true})
	require.NoError(t, err)
}

func TestWebhookToPrivateAddressNeedsTheApp(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	h := setup(t, host.Config{Sandbox: host.SandboxInProcess, ServeEvents: true}, webhookApp(srv.URL, false))
	res, err := h.SendEvent(context.Background(), engine.SendRequest{Sender: "shop", Kwargs: map[string]any{}})
	require.NoError(t, err)
	ctx := context.Background()
	var rows []logstore.Row
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		require.NoError(t, h.LogWriter().Flush(ctx))
		rows, err = h.LogStore().Attempts(ctx, res.NodeIDs[0])
		require.NoError(t, err)
		if last := rows[len(rows)-1]; last.Status == logstore.StatusFail {
			break
		}
	}
	last := rows[len(rows)-1]
	require.Equal(t, logstore.StatusFail, last.Status, "states: %+v", rows)
	require.NotNil(t, last.Error)
	require.Equal(t, "webhook_forbidden", last.Error.Code, last.Error.Message)
	require.Zero(t, hits.Load(), "nothing reached the loopback server")
}
