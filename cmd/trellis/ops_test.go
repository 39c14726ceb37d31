package main

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNodeAndRequestOps: `trellis node OP ID` and `trellis request OP ID` on the embedded
// backends. A `trellis call` sends an event no host consumes, so its node stays queued: pause
// holds it, a second pause is refused naming the state, revoke ends it; bad input is refused.
func TestNodeAndRequestOps(t *testing.T) {
	t.Parallel()
	dir := initApp(t)
	write(t, filepath.Join(dir, "events/OnOps/e.json"), `{"title": "Ops", "type": "events.NormalType", "sender": "ops"}`)
	write(t, filepath.Join(dir, "events/OnOps/index.js"), "exports.handle = function () { return 1; };\n")
	write(t, filepath.Join(dir, "services/OpsSender/e.json"), `{"title": "Sends", "type": "services.NormalType", "functionList": [{"name": "send", "args": []}]}`)
	write(t, filepath.Join(dir, "services/OpsSender/index.js"),
		"exports.send = function () { return app.getElement(\"events.services.EventSvc\").sendEvent(\"ops\", {n: 1}); };\n")
	r := trellis(t, "call", "--app", dir, "services.OpsSender.send")
	require.Equal(t, 0, r.code, r.stderr)
	var sent struct {
		RequestID string   `json:"requestId"`
		NodeIDs   []string `json:"nodeIds"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &sent), r.stdout)
	require.Len(t, sent.NodeIDs, 1)
	node := sent.NodeIDs[0]

	r = trellis(t, "node", "--app", dir, "pause", node)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, `"stage": "paused"`)
	r = trellis(t, "node", "--app", dir, "pause", node)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "waiting/paused")
	r = trellis(t, "request", "--app", dir, "pause", sent.RequestID)
	require.Equal(t, 0, r.code, r.stderr)
	r = trellis(t, "request", "--app", dir, "pause", sent.RequestID)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "it is paused")
	r = trellis(t, "request", "--app", dir, "revoke", sent.RequestID)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, node)
	require.Contains(t, r.stdout, `"state": "revoked"`)
	r = trellis(t, "node", "--app", dir, "resume", node)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "revoked")

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"node", "--app", dir, "pause", "node_nope"}, "node_nope"},
		{[]string{"request", "--app", dir, "revoke", "req_nope"}, "req_nope"},
		{[]string{"node", "--app", dir, "explode", node}, `no node operation "explode"`},
		{[]string{"request", "--app", dir, "explode", sent.RequestID}, `no request operation "explode"`},
		{[]string{"node", "--app", dir, "retry", node, "{"}, "retry data is not valid JSON"},
		{[]string{"node", "--app", dir, "retry", node, "[1]"}, "JSON object"},
	} {
		r := trellis(t, tc.args...)
		require.Equal(t, 1, r.code, tc.args)
		require.Contains(t, r.stderr, tc.want, tc.args)
	}
}
