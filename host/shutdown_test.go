package host_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/backends"
	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/tasks"
	"github.com/trellis-run/trellis/logstore"
)

// slowApp has an event handler and a task function that each run about a second.
var slowApp = map[string]string{
	"app.json":             `{"name": "drain"}`,
	"events/Slow/e.json":   `{"title": "Slow", "type": "events.NormalType", "sender": "s", "retry": {"policy": "none"}}`,
	"events/Slow/index.js": `exports.handle = function (event) { var end = Date.now() + 1200; while (Date.now() < end) {} return "handled " + event.kwargs.n; };`,
	"tasks/Slow/e.json":    `{"title": "Slow", "type": "tasks.NormalType", "funcName": "run"}`,
	"tasks/Slow/index.js":  `exports.run = function (argDict) { var end = Date.now() + 1200; while (Date.now() < end) {} return "ran " + argDict.n; };`,
}

// TestStopDrainsRunningExecutions: a host drained and stopped (SIGTERM in serve) while a handler
// and a task function run stops taking new work and lets them finish within the drain's bound:
// their rows end success, the log writer has them in the store, and nothing is left running.
// Stop used to cancel them at once: the node stayed "running" in the log until another host took
// the delivery over.
func TestStopDrainsRunningExecutions(t *testing.T) {
	t.Parallel()
	for _, sandbox := range []string{host.SandboxInProcess, host.SandboxIsolated} {
		t.Run(sandbox, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			cfg := host.Config{AppDir: writeApp(t, slowApp), Sandbox: sandbox, Workers: 2, ServeEvents: true}
			h, err := host.New(cfg, backends.Open)
			require.NoError(t, err)
			require.NoError(t, h.Start(ctx))
			stopped := false
			t.Cleanup(func() {
				if !stopped {
					_ = h.Stop(context.Background())
				}
			})

			sent, err := h.SendEvent(ctx, engine.SendRequest{Sender: "s", Kwargs: map[string]any{"n": int64(1)}})
			require.NoError(t, err)
			require.Len(t, sent.NodeIDs, 1)
			node := sent.NodeIDs[0]
			created, err := h.Tasks().CreateTimerTask(ctx, tasks.CreateRequest{FullName: "tasks.Slow", StartTime: time.Now().UnixMilli(),
				FuncName: "run", TaskType: "tasks.NormalType", ArgDict: map[string]any{"n": int64(2)}})
			require.NoError(t, err)
			taskID := created["taskId"].(string)

			// Both are running when the host is told to stop.
			require.Eventually(t, func() bool {
				return latestStatus(t, h, node) == logstore.StatusRunning && latestStatus(t, h, taskID) == logstore.StatusRunning
			}, 20*time.Second, 10*time.Millisecond, "the handler and the task run")
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			require.NoError(t, h.Drain(sctx), "the runs finish well within the bound")
			require.NoError(t, h.Stop(sctx))
			stopped = true

			// What the store holds, read by a host on the same data directory that runs nothing.
			cfg.ServeEvents = false
			reader, err := host.New(cfg, backends.Open)
			require.NoError(t, err)
			require.NoError(t, reader.Start(ctx))
			t.Cleanup(func() { _ = reader.Stop(context.Background()) })
			require.NoError(t, reader.LogWriter().Flush(ctx))
			rows, err := reader.LogStore().Attempts(ctx, node)
			require.NoError(t, err)
			require.NotEmpty(t, rows)
			last := rows[len(rows)-1]
			require.Equal(t, logstore.StatusSuccess, last.Status, "the handler finished: %+v", last)
			require.JSONEq(t, `"handled 1"`, string(last.Result))
			rows, err = reader.LogStore().Attempts(ctx, taskID)
			require.NoError(t, err)
			require.NotEmpty(t, rows)
			last = rows[len(rows)-1]
			require.Equal(t, logstore.StatusSuccess, last.Status, "the task finished: %+v", last)
			require.JSONEq(t, `"ran 2"`, string(last.Result))
			running, err := reader.LogStore().Query(ctx, logstore.Query{Status: logstore.StatusRunning})
			require.NoError(t, err)
			require.Zero(t, running.TotalCount, "nothing left running: %+v", running.RowDatas)
			rec, err := reader.Tasks().GetTask(ctx, taskID)
			require.NoError(t, err)
			require.Equal(t, "success", rec["status"], "the task record agrees: %v", rec)
		})
	}
}

// latestStatus is the status of a node's latest row, after flushing the writer ("" if none).
func latestStatus(t *testing.T, h *host.Host, node string) string {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, h.LogWriter().Flush(ctx))
	rows, err := h.LogStore().Attempts(ctx, node)
	require.NoError(t, err)
	if len(rows) == 0 {
		return ""
	}
	return rows[len(rows)-1].Status
}
