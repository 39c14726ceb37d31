package web

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/logstore"
)

// TestReplayOfElement: the editor replays its draft with the fullName it is a draft of, so a
// node of another element is refused instead of being run with this draft as that element.
func TestReplayOfElement(t *testing.T) {
	t.Parallel()
	handler, h, _ := setupDrafts(t, host.SandboxInProcess, jsvm.Limits{})
	at := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	w := h.LogWriter()
	require.NoError(t, w.Write(context.Background(), logstore.Row{ID: "r1", Kind: logstore.KindEvent, FullName: "events.OnLogin",
		Sender: "models.UserModel", EventType: "events.NormalType", EventID: "evt_1", Status: logstore.StatusFail,
		Error: &logstore.RowError{Code: "js_error", Message: "was broken"}, RequestID: "req_1", NodeID: "node_ev", Attempt: 1,
		CreatedAt: at, RecordedAt: at.Add(time.Second), Kwargs: json.RawMessage(`{"userId": 7}`)}))
	require.NoError(t, w.Flush(context.Background()))
	listener := `exports.handle = function (event) { return {user: event.kwargs.userId, fixed: true}; };`
	body := func(fullName any) string {
		return draftReq(t, draftApp["events/OnLogin/e.json"], map[string]string{"index.js": listener}, map[string]any{"fullName": fullName})
	}
	for _, sc := range []scenario{
		{name: "the node's element", body: body("events.OnLogin"), path: "/api/nodes/node_ev/replay", wantStatus: 200,
			wantIn: []string{`"result":{"fixed":true,"user":7}`, `"logged":{"error":{"code":"js_error"`}},
		{name: "another element", body: body("services.MathSvc"), path: "/api/nodes/node_ev/replay", wantStatus: 409,
			wantIn: []string{"node node_ev is a node of events.OnLogin, not of services.MathSvc"}},
		{name: "an unknown node", body: body("events.OnLogin"), path: "/api/nodes/node_nope/replay", wantStatus: 404, wantIn: []string{"node_nope"}},
		{name: "fullName not a string", body: body(7), path: "/api/nodes/node_ev/replay", wantStatus: 400, wantIn: []string{"fullName must be"}},
		{name: "fullName not a name", body: body("../x"), path: "/api/nodes/node_ev/replay", wantStatus: 400, wantIn: []string{"fullName must be"}},
		{name: "null is no fullName", body: body(nil), path: "/api/nodes/node_ev/replay", wantStatus: 200, wantIn: []string{`"fixed":true`}},
	} {
		sc.method = "POST"
		t.Run(sc.name, func(t *testing.T) { run(t, handler, sc) })
	}
}
