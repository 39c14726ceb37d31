package host_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/backends"
	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/logstore"
)

// A host that starts with a backlog runs none of it before every part its handlers use is up:
// before, Start subscribed the listeners before the task center and the model runtime existed,
// and the first deliveries of a backlog failed for good with "model storage is not running".
func TestBacklogWaitsForEveryPartBeforeItRuns(t *testing.T) {
	t.Parallel()
	files := map[string]string{
		"app.json":           `{"name": "startorder"}`,
		"models/Item/e.json": `{"title": "Item", "type": "models.NormalType", "fields": [{"name": "n", "type": "Integer"}]}`,
		"events/Use/e.json":  `{"title": "Use", "type": "events.NormalType", "sender": "s", "retry": {"policy": "none"}}`,
		"events/Use/index.js": `exports.handle = function (event) {
  app.getElement("models.Item").query({});
  app.getElement("services.TaskSvc").getTaskTmplList("");
  return event.kwargs.n;
};`,
	}
	dir := writeApp(t, files)
	ctx := context.Background()
	cfg := host.Config{AppDir: dir, Sandbox: host.SandboxInProcess}
	// The backlog: sent by a host that runs no listener, on the data directory the serving host
	// opens next.
	sender, err := host.New(cfg, backends.Open)
	require.NoError(t, err)
	require.NoError(t, sender.Start(ctx))
	var nodes []string
	for i := range 200 {
		res, err := sender.SendEvent(ctx, engine.SendRequest{Sender: "s", Kwargs: map[string]any{"n": int64(i)}})
		require.NoError(t, err)
		nodes = append(nodes, res.NodeIDs...)
	}
	require.NoError(t, sender.Stop(ctx))

	cfg.ServeEvents = true
	server, err := host.New(cfg, backends.Open)
	require.NoError(t, err)
	require.NoError(t, server.Start(ctx))
	t.Cleanup(func() { require.NoError(t, server.Stop(context.Background())) })
	var failed []logstore.Row
	require.Eventually(t, func() bool {
		if server.LogWriter().Flush(ctx) != nil {
			return false
		}
		failed = failed[:0]
		for _, n := range nodes {
			rows, err := server.LogStore().Attempts(ctx, n)
			if err != nil || len(rows) == 0 {
				return false
			}
			switch last := rows[len(rows)-1]; last.Status {
			case logstore.StatusFail:
				failed = append(failed, last)
			case logstore.StatusSuccess:
			default:
				return false
			}
		}
		return true
	}, 60*time.Second, 100*time.Millisecond, "every event of the backlog ends")
	for _, r := range failed {
		t.Errorf("node %s failed: %s", r.NodeID, r.Error)
	}
}
