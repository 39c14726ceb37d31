package host_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/timers"
)

// requestTaskApp: a service whose call makes a timer task in the call's request, and a listener
// whose handler does the same in its event's request.
func requestTaskApp(name string) map[string]string {
	return map[string]string{
		"app.json":             fmt.Sprintf(`{"name": %q}`, name),
		"tasks/Once/e.json":    `{"title": "Once", "type": "tasks.NormalType", "repeatType": "once", "funcName": "run"}`,
		"tasks/Once/index.js":  `exports.run = function (argDict) { return argDict.x * 2; };`,
		"services/Plan/e.json": `{"title": "Plan", "type": "services.NormalType"}`,
		"services/Plan/index.js": `
exports.at = function (when) {
  return app.getElement("services.TaskSvc").createTimerTask("tasks.Once", when, "run", "tasks.NormalType", {x: 21});
};`,
	}
}

// TestRequestOpsOnTaskNodes: `trellis request pause|resume|revoke` (Host.RequestOp) reach the
// timer tasks a call made in its request: a paused request's task does not fire when due, and
// fires after the resume; a revoked request's task ends fail/revoked and never fires. Embedded
// and on Redis.
func TestRequestOpsOnTaskNodes(t *testing.T) {
	t.Parallel()
	for _, onRedis := range []bool{false, true} {
		t.Run(map[bool]string{false: "embedded", true: "redis"}[onRedis], func(t *testing.T) {
			t.Parallel()
			cfg := host.Config{Sandbox: host.SandboxInProcess, ServeEvents: true, DataDir: t.TempDir()}
			name := "requestops"
			if onRedis {
				cfg.RedisURL = redisURL(t)
				name = fmt.Sprintf("requestops%d", time.Now().UnixNano())
			}
			h := setup(t, cfg, requestTaskApp(name))
			ctx := context.Background()
			plan := func(in time.Duration) (requestID, taskID string) {
				t.Helper()
				res, err := h.CallService(ctx, "services.Plan", "at", []any{time.Now().Add(in).UnixMilli()})
				require.NoError(t, err)
				rec := res.Value.(map[string]any)
				return rec["requestId"].(string), rec["taskId"].(string)
			}

			req, task := plan(600 * time.Millisecond)
			p, err := h.RequestOp(ctx, "pause", req)
			require.NoError(t, err)
			require.Equal(t, engine.RequestOpResult{RequestID: req, State: "paused", Nodes: []string{task}}, p)
			time.Sleep(1500 * time.Millisecond)
			rec := waitTask(t, h, task, timers.StatusPaused)
			require.EqualValues(t, 0, rec["attempt"], "due while its request is paused: it did not fire")
			_, err = h.NodeOp(ctx, "resume", task, nil)
			require.ErrorContains(t, err, "resume the request")
			r, err := h.RequestOp(ctx, "resume", req)
			require.NoError(t, err)
			require.Equal(t, []string{task}, r.Nodes)
			rec = waitTask(t, h, task, timers.StatusSuccess)
			require.EqualValues(t, 42, rec["result"])

			req, task = plan(time.Hour)
			v, err := h.RequestOp(ctx, "revoke", req)
			require.NoError(t, err)
			require.Equal(t, []string{task}, v.Nodes)
			rec = waitTask(t, h, task, timers.StatusFail)
			require.Equal(t, "revoked", rec["error"].(map[string]any)["code"])
			rows := taskRows(t, h, task)
			require.Equal(t, "fail/revoked", rows[len(rows)-1].Status+"/"+rows[len(rows)-1].Stage)
			_, err = h.RequestOp(ctx, "resume", req)
			require.ErrorIs(t, err, engine.ErrConflict)
			require.ErrorContains(t, err, "revoked")
		})
	}
}
