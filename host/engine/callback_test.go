package engine_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/internal/parttest"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/host/webhook"
	"github.com/trellis-run/trellis/logstore"
)

var callbackApp = map[string]string{
	"events/Wait/e.json":    `{"title": "Waits", "type": "events.NormalType", "sender": "wait", "timeout": "10s", "retry": {"policy": "none"}}`,
	"events/Wait/index.js":  `exports.handle = function (event, ctx) { ctx.waitCallback(); return "accepted"; };`,
	"events/Short/e.json":   `{"title": "Waits briefly", "type": "events.NormalType", "sender": "short", "timeout": "300ms", "retry": {"policy": "none"}}`,
	"events/Short/index.js": `exports.handle = function (event, ctx) { ctx.waitCallback(); };`,
	"events/Good/e.json":    `{"title": "Good", "type": "events.NormalType", "sender": "good"}`,
	"events/Good/index.js":  `exports.handle = function () { return 1; };`,
}

// TestCallback: a node waiting for its callback ends by it: data {"error": …} fails it,
// anything else is its result.
func TestCallback(t *testing.T) {
	t.Parallel()
	b := setup(t, callbackApp)
	cases := []struct {
		name   string
		data   any
		status string
		stage  string
		result string // JSON; "" for none
		err    *logstore.RowError
	}{
		{"an object", map[string]any{"paid": true}, logstore.StatusSuccess, logstore.StageCallback, `{"paid": true}`, nil},
		{"nothing", nil, logstore.StatusSuccess, logstore.StageCallback, `null`, nil},
		{"a string", "fine", logstore.StatusSuccess, logstore.StageCallback, `"fine"`, nil},
		{"error null is no error", map[string]any{"error": nil, "x": int64(9007199254740993)}, logstore.StatusSuccess, logstore.StageCallback,
			`{"error": null, "x": 9007199254740993}`, nil},
		{"an error", map[string]any{"error": "card declined"}, logstore.StatusFail, logstore.StageCallbackFailed, "",
			&logstore.RowError{Code: "callback", Message: "card declined"}},
		{"an error that is not a string", map[string]any{"error": map[string]any{"code": "E1", "message": "declined"}}, logstore.StatusFail, logstore.StageCallbackFailed, "",
			&logstore.RowError{Code: "callback", Message: `{"code":"E1","message":"declined"}`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			node := b.send("wait", map[string]any{}).NodeIDs[0]
			rows := b.awaitStage(node, logstore.StageAwaitingCallback, 1)
			waiting := rows[len(rows)-1]
			require.Equal(t, logstore.StatusRunning, waiting.Status)
			require.JSONEq(t, `"accepted"`, string(waiting.Result), "the handler's answer is kept while it waits")
			require.True(t, waiting.EndTime.IsZero(), "a waiting node has not ended")
			require.False(t, waiting.StartTime.IsZero())

			res, err := b.eng.Callback(b.ctx, node, tc.data)
			require.NoError(t, err)
			require.Equal(t, engine.CallbackResult{NodeID: node, Status: tc.status}, res)
			rows = b.awaitStage(node, tc.stage, 1)
			require.Equal(t, []string{"waiting/queued@1", "running/running@1", "running/awaitingCallback@1", tc.status + "/" + tc.stage + "@1"}, stages(rows))
			done := rows[len(rows)-1]
			if tc.result != "" {
				require.JSONEq(t, tc.result, string(done.Result))
			} else {
				require.Empty(t, done.Result)
			}
			require.Equal(t, tc.err, done.Error)
			require.Equal(t, waiting.StartTime, done.StartTime)
			require.False(t, done.EndTime.Before(done.StartTime))
			require.Equal(t, b.rec.Host(), done.Host)

			_, err = b.eng.Callback(b.ctx, node, nil)
			require.ErrorIs(t, err, engine.ErrConflict, "a node takes one callback")
			require.Equal(t, vocab.CodeConflict, vocab.CodeOf(err))
			require.ErrorContains(t, err, "is "+tc.status+"/"+tc.stage+", not waiting for a callback")
		})
	}
	t.Run("refusals", func(t *testing.T) {
		t.Parallel()
		_, err := b.eng.Callback(b.ctx, "node_nope", nil)
		require.ErrorIs(t, err, engine.ErrNotFound)
		require.Equal(t, vocab.CodeNotFound, vocab.CodeOf(err))

		node := b.send("good", map[string]any{}).NodeIDs[0]
		b.awaitStage(node, logstore.StageDone, 1)
		_, err = b.eng.Callback(b.ctx, node, map[string]any{})
		require.ErrorIs(t, err, engine.ErrConflict, "a node that did not ask for a callback takes none")
		require.ErrorContains(t, err, "is success/done, not waiting for a callback")
	})
}

// TestCallbackDeadline: a callback that does not come within the listener's timeout fails the
// node; one that came in time is not failed when its deadline passes.
func TestCallbackDeadline(t *testing.T) {
	t.Parallel()
	b := setup(t, callbackApp)
	answered := b.send("short", map[string]any{}).NodeIDs[0]
	b.awaitStage(answered, logstore.StageAwaitingCallback, 1)
	_, err := b.eng.Callback(b.ctx, answered, "ok")
	require.NoError(t, err)

	// Sent after the answer was recorded, this node's deadline comes after the first one's.
	forgotten := b.send("short", map[string]any{}).NodeIDs[0]
	rows := b.awaitStage(forgotten, logstore.StageCallbackTimeout, 1)
	last := rows[len(rows)-1]
	require.Equal(t, logstore.StatusFail, last.Status)
	require.Equal(t, &logstore.RowError{Code: vocab.CodeTimeout, Message: "no callback for node " + forgotten + " within 300ms"}, last.Error)
	waited := last.RecordedAt.Sub(rows[len(rows)-2].RecordedAt)
	require.GreaterOrEqual(t, waited, 300*time.Millisecond-2*time.Millisecond, "the deadline is the listener's timeout")

	// Both deadlines have been handled once the deadline queue holds nothing.
	require.Eventually(t, func() bool {
		lag, err := b.bus.Lag(b.ctx, "callback:listener:events.Short")
		require.NoError(t, err)
		return sumLag(lag) == 0
	}, parttest.WaitLimit, 5*time.Millisecond)
	rows = b.attempts(answered)
	require.Equal(t, logstore.StageCallback, rows[len(rows)-1].Stage, "%v", stages(rows))
	_, err = b.eng.Callback(b.ctx, forgotten, "too late")
	require.ErrorIs(t, err, engine.ErrConflict)
}

func sumLag(groups []bus.GroupLag) int64 {
	var n int64
	for _, g := range groups {
		n += g.Pending + g.Undelivered
	}
	return n
}

// hookServer answers webhook deliveries: /ok with a JSON body, /fail with a 500.
type hookServer struct {
	*httptest.Server
	mu  sync.Mutex
	got []*http.Request
	raw [][]byte
}

func newHookServer(t *testing.T, secret string) *hookServer {
	h := &hookServer{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.got, h.raw = append(h.got, r), append(h.raw, body)
		h.mu.Unlock()
		if err := webhook.Verify(secret, r.Header.Get(webhook.HeaderSignature), body, time.Minute, time.Now()); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/hang" {
			<-r.Context().Done() // answers only once the caller gives up
			return
		}
		if r.URL.Path == "/fail" {
			http.Error(w, "down for maintenance", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"received": true}`))
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) last() (*http.Request, map[string]any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var body map[string]any
	_ = json.Unmarshal(h.raw[len(h.raw)-1], &body)
	return h.got[len(h.got)-1], body
}

func hookApp(url string, allowPrivate bool) map[string]string {
	return map[string]string{
		"app.json": `{"name": "hooks", "webhooks": {"allowPrivateNetwork": ` + strconv.FormatBool(allowPrivate) + `}}`,
		"events/Sync/e.json": `{"title": "Sync", "type": "events.NormalType", "sender": "sync", "retry": {"policy": "none"},
			"webhook": {"url": "` + url + `/ok", "secret": "s3cret"}}`,
		"events/Broken/e.json": `{"title": "Broken", "type": "events.NormalType", "sender": "broken", "retry": {"policy": "none"},
			"webhook": {"url": "` + url + `/fail", "secret": "s3cret"}}`,
		"events/Hang/e.json": `{"title": "Hang", "type": "events.NormalType", "sender": "hang", "retry": {"policy": "none"},
			"webhook": {"url": "` + url + `/hang", "secret": "s3cret", "timeout": "100ms"}}`,
		"events/Async/e.json": `{"title": "Async", "type": "events.NormalType", "sender": "async", "retry": {"policy": "none"},
			"webhook": {"url": "` + url + `/ok", "secret": "s3cret", "mode": "async"}}`,
	}
}

// TestWebhookListeners: a webhook listener POSTs the event, signed, instead of running code: a
// 2xx answer is its result (sync) or the start of its wait for a callback (async); an error
// status fails it; a private address is refused unless app.json allows it.
func TestWebhookListeners(t *testing.T) {
	t.Parallel()
	srv := newHookServer(t, "s3cret")
	b := setup(t, hookApp(srv.URL, true))

	res := b.send("sync", map[string]any{"orderId": int64(9007199254740993)})
	rows := b.awaitStage(res.NodeIDs[0], logstore.StageDone, 1)
	require.JSONEq(t, `{"received": true}`, string(rows[len(rows)-1].Result))
	req, body := srv.last()
	require.Equal(t, http.MethodPost, req.Method)
	require.Equal(t, res.EventID, req.Header.Get(webhook.HeaderEventID))
	require.Equal(t, res.NodeIDs[0], req.Header.Get(webhook.HeaderNodeID))
	require.Equal(t, "1", req.Header.Get(webhook.HeaderAttempt))
	require.Equal(t, res.NodeIDs[0], body["nodeId"])
	require.Equal(t, "sync", body["sender"])
	srv.mu.Lock()
	require.Contains(t, string(srv.raw[len(srv.raw)-1]), `"orderId":9007199254740993`, "the body carries kwargs exactly")
	srv.mu.Unlock()

	res = b.send("broken", map[string]any{})
	rows = b.awaitStage(res.NodeIDs[0], logstore.StageDeadLettered, 1)
	require.Equal(t, "webhook_status", rows[len(rows)-1].Error.Code)

	res = b.send("hang", map[string]any{})
	rows = b.awaitStage(res.NodeIDs[0], logstore.StageDeadLettered, 1)
	require.Equal(t, vocab.CodeTimeout, rows[len(rows)-1].Error.Code, "a webhook that does not answer within its timeout")

	res = b.send("async", map[string]any{})
	node := res.NodeIDs[0]
	rows = b.awaitStage(node, logstore.StageAwaitingCallback, 1)
	require.JSONEq(t, `{"received": true}`, string(rows[len(rows)-1].Result))
	_, err := b.eng.Callback(b.ctx, node, map[string]any{"shipped": true})
	require.NoError(t, err)
	rows = b.awaitStage(node, logstore.StageCallback, 1)
	require.JSONEq(t, `{"shipped": true}`, string(rows[len(rows)-1].Result))

	t.Run("private network not allowed", func(t *testing.T) {
		t.Parallel()
		b := setup(t, hookApp(srv.URL, false))
		res := b.send("sync", map[string]any{})
		rows := b.awaitStage(res.NodeIDs[0], logstore.StageDeadLettered, 1)
		require.Equal(t, "webhook_forbidden", rows[len(rows)-1].Error.Code)
	})
}
