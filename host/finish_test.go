package host_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/signals"
)

// finishApp: a service call sends an event whose handler sends two more, whose handlers each
// send one more (a slow one last): six nodes, the call's own included.
func finishApp(name string) map[string]string {
	return map[string]string{
		"app.json":               fmt.Sprintf(`{"name": %q, "signals": {"enabled": true}}`, name),
		"services/Go/e.json":     `{"title": "Go", "type": "services.NormalType"}`,
		"services/Go/index.js":   `exports.start = function () { return app.getElement("events.services.EventSvc").sendEvent("services.Go", {}); };`,
		"events/First/e.json":    `{"title": "First", "type": "events.NormalType", "sender": "services.Go"}`,
		"events/First/index.js":  `exports.handle = function () { const ev = app.getElement("events.services.EventSvc"); ev.sendEvent("events.First", {n: 1}); ev.sendEvent("events.First", {n: 2}); return 1; };`,
		"events/Second/e.json":   `{"title": "Second", "type": "events.NormalType", "sender": "events.First"}`,
		"events/Second/index.js": `exports.handle = function (event) { app.getElement("events.services.EventSvc").sendEvent("events.Second", {n: event.kwargs.n}); return 2; };`,
		"events/Third/e.json":    `{"title": "Third", "type": "events.NormalType", "sender": "events.Second"}`,
		"events/Third/index.js":  `exports.handle = function (event) { if (event.kwargs.n === 2) { const end = Date.now() + 200; while (Date.now() < end) {} } return 3; };`,
	}
}

// A service call starts a request: pre/post_prepare_run_pipeline, then its nodes' moments, and
// exactly one pipeline_finish once the last of its five event nodes and the call's own node
// ended, naming the request and the node whose end finished it. Embedded and on Redis.
func TestPipelineFinishOfAServiceCall(t *testing.T) {
	t.Parallel()
	for _, onRedis := range []bool{false, true} {
		t.Run(map[bool]string{false: "embedded", true: "redis"}[onRedis], func(t *testing.T) {
			t.Parallel()
			cfg := host.Config{Sandbox: host.SandboxInProcess, ServeEvents: true, DataDir: t.TempDir()}
			name := "finish"
			if onRedis {
				cfg.RedisURL = redisURL(t)
				name = fmt.Sprintf("finish%d", time.Now().UnixNano())
			}
			h := setup(t, cfg, finishApp(name))
			ctx := context.Background()
			r, _, err := h.SignalsFrom("")
			require.NoError(t, err)
			res, err := h.CallService(ctx, "services.Go", "start", nil)
			require.NoError(t, err)
			requestID := res.Value.(map[string]any)["requestId"].(string)

			ofRequest := func(recs []signals.Record) []signals.Record {
				var out []signals.Record
				for _, rec := range recs {
					if rec.RequestID == requestID {
						out = append(out, rec)
					}
				}
				return out
			}
			count := func(recs []signals.Record, typ string) int {
				n := 0
				for _, rec := range recs {
					if string(rec.Type) == typ {
						n++
					}
				}
				return n
			}
			recs := readUntil(t, r, func(recs []signals.Record) bool { return count(ofRequest(recs), "pipeline_finish") >= 1 })
			// Anything still to come would follow within moments: read a little longer.
			time.Sleep(300 * time.Millisecond)
			more, _, _, _ := r.Next(1000)
			mine := ofRequest(append(recs, more...))
			require.Equal(t, 1, count(mine, "pipeline_finish"), "exactly one pipeline_finish")
			require.Equal(t, 5, count(mine, "node_finish"), "five event nodes ran")
			require.Equal(t, "pre_prepare_run_pipeline", string(mine[0].Type))
			require.Equal(t, "post_prepare_run_pipeline", string(mine[1].Type))
			require.Equal(t, 1, count(mine, "pre_prepare_run_pipeline"), "the handlers' sendEvents join the request")
			last := mine[len(mine)-1]
			require.Equal(t, "pipeline_finish", string(last.Type), "pipeline_finish comes after every node's moments: %v", mine)
			require.Equal(t, requestID, last.Data["root_pipeline_id"])
			require.NotEmpty(t, last.Data["node_id"])
			require.Equal(t, last.NodeID, last.Data["node_id"])
		})
	}
}

// A task created in a request is one of its nodes: the request finishes when the task has run
// (after a failed first try and its retry), not when the call that created it returned.
func TestPipelineFinishWaitsForATask(t *testing.T) {
	t.Parallel()
	files := map[string]string{
		"app.json":             `{"name": "finishtask", "signals": {"enabled": true}}`,
		"services/Plan/e.json": `{"title": "Plan", "type": "services.NormalType"}`,
		"services/Plan/index.js": `exports.plan = function () {
  return app.getBuiltin("services.TaskSvc").createTimerTask("tasks.Later", "2001-01-01 00:00:00", "run", "tasks.NormalType", {});
};`,
		"tasks/Later/e.json": `{"title": "Later", "type": "tasks.NormalType", "repeatType": "once", "funcName": "run",
			"retry": {"policy": "default", "interval": "200ms", "maxAttempts": 2}}`,
		"tasks/Later/index.js": `exports.run = function (argDict, ctx) { if (ctx.attempt < 2) throw new Error("not yet"); return 1; };`,
	}
	h := setup(t, host.Config{Sandbox: host.SandboxInProcess, ServeEvents: true, DataDir: t.TempDir()}, files)
	ctx := context.Background()
	r, _, err := h.SignalsFrom("")
	require.NoError(t, err)
	res, err := h.CallService(ctx, "services.Plan", "plan", nil)
	require.NoError(t, err)
	task := res.Value.(map[string]any)
	taskID := task["taskId"].(string)
	var requestID string
	finishOf := func(recs []signals.Record) []signals.Record {
		var out []signals.Record
		for _, rec := range recs {
			if rec.NodeID == taskID && requestID == "" {
				requestID = rec.RequestID
			}
			if rec.Type == "pipeline_finish" && requestID != "" && rec.RequestID == requestID {
				out = append(out, rec)
			}
		}
		return out
	}
	recs := readUntil(t, r, func(recs []signals.Record) bool { return len(finishOf(recs)) >= 1 })
	time.Sleep(300 * time.Millisecond)
	more, _, _, _ := r.Next(1000)
	recs = append(recs, more...)
	fin := finishOf(recs)
	require.Len(t, fin, 1)
	require.Equal(t, taskID, fin[0].Data["node_id"], "the task's end finished the request")
	var types []string
	for _, rec := range recs {
		if rec.RequestID == requestID {
			types = append(types, string(rec.Type))
		}
	}
	require.Equal(t, []string{"pre_prepare_run_pipeline", "post_prepare_run_pipeline", "node_enter", "node_execute_exception",
		"node_enter", "node_finish", "pipeline_finish"}, types)
}

// A task scheduled for later keeps its request unfinished; forcedEnd ends it, and that finishes
// the request.
func TestPipelineFinishOnForcedEndOfATask(t *testing.T) {
	t.Parallel()
	files := map[string]string{
		"app.json":             `{"name": "finishend", "signals": {"enabled": true}}`,
		"services/Plan/e.json": `{"title": "Plan", "type": "services.NormalType"}`,
		"services/Plan/index.js": `exports.plan = function () {
  return app.getBuiltin("services.TaskSvc").createTimerTask("tasks.Later", "2099-01-01 00:00:00", "run", "tasks.NormalType", {});
};`,
		"tasks/Later/e.json":   `{"title": "Later", "type": "tasks.NormalType", "repeatType": "once", "funcName": "run"}`,
		"tasks/Later/index.js": `exports.run = function () { return 1; };`,
	}
	h := setup(t, host.Config{Sandbox: host.SandboxInProcess, ServeEvents: true, DataDir: t.TempDir()}, files)
	ctx := context.Background()
	r, _, err := h.SignalsFrom("")
	require.NoError(t, err)
	res, err := h.CallService(ctx, "services.Plan", "plan", nil)
	require.NoError(t, err)
	taskID := res.Value.(map[string]any)["taskId"].(string)
	recs := readUntil(t, r, func(recs []signals.Record) bool { return len(recs) >= 2 }) // the call's prepare moments
	requestID := recs[0].RequestID
	time.Sleep(200 * time.Millisecond)
	more, _, _, _ := r.Next(1000)
	for _, rec := range append(recs, more...) {
		require.NotEqual(t, "pipeline_finish", string(rec.Type), "the task has not run: the request is not finished")
	}
	_, err = h.Tasks().ForcedEnd(ctx, taskID)
	require.NoError(t, err)
	recs = readUntil(t, r, func(recs []signals.Record) bool { return len(recs) >= 1 })
	require.Equal(t, "pipeline_finish", string(recs[0].Type))
	require.Equal(t, map[string]any{"root_pipeline_id": requestID, "node_id": taskID}, recs[0].Data)
}
