package host_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/tasks"
	"github.com/trellis-run/trellis/host/vocab"
)

// bigID is above 2^53: a float64 cannot hold it, so any layer that decodes JSON numbers as
// float64 (as encoding/json does by default) turns it into 9007199254740992.
const bigID = int64(9007199254740993)

func exactIntegersApp(name string) map[string]string {
	return map[string]string{
		"app.json":            fmt.Sprintf(`{"name": %q}`, name),
		"services/Ids/e.json": `{"title": "Ids", "type": "services.NormalType"}`,
		"services/Ids/index.js": `
exports.echo = function (x) { return {got: x, text: String(x.id)}; };
exports.store = function (row) {
  const big = app.getElement("models.Big");
  const created = big.create(row);
  return big.get(created.id);
};`,
		"events/OnIds/e.json":   `{"title": "On ids", "type": "events.NormalType", "sender": "services.Ids"}`,
		"events/OnIds/index.js": `exports.handle = function (event) { return {orderId: event.kwargs.orderId, text: String(event.kwargs.orderId)}; };`,
		"tasks/Echo/e.json":     `{"title": "Echo", "type": "tasks.NormalType", "repeatType": "once", "funcName": "run"}`,
		"tasks/Echo/index.js":   `exports.run = function (argDict) { return {orderId: argDict.orderId, text: String(argDict.orderId)}; };`,
		"models/Big/e.json": `{"title": "Big", "type": "models.NormalType", "fields": [
			{"name": "ref", "type": "Integer"}, {"name": "meta", "type": "JSON"}]}`,
	}
}

// TestIntegersAbove2To53StayExact sends {"orderId": 9007199254740993} through every path a value
// travels — a service call, sendEvent over the bus to a handler, createTimerTask through the
// task store to a task function, a model row with an Integer and a JSON field — and checks the
// id arrives unchanged, on embedded storage and on Redis, in both sandboxes.
func TestIntegersAbove2To53StayExact(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		sandbox string
		redis   bool
	}{
		{"embedded/inprocess", host.SandboxInProcess, false},
		{"embedded/isolated", host.SandboxIsolated, false},
		{"redis/inprocess", host.SandboxInProcess, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := host.Config{Sandbox: tc.sandbox, ServeEvents: true}
			if tc.redis {
				cfg.RedisURL = redisURL(t)
			}
			h := setup(t, cfg, exactIntegersApp(vocab.NewID("ints_")))
			ctx := context.Background()
			// What an HTTP body or `trellis call` argument decodes to.
			kwargs, err := vocab.DecodeJSON([]byte(`{"orderId": 9007199254740993}`))
			require.NoError(t, err)
			wantText := "9007199254740993"

			// A service call, arguments in and result out.
			res, err := h.CallService(ctx, "services.Ids", "echo", []any{map[string]any{"id": bigID}})
			require.NoError(t, err)
			out := res.Value.(map[string]any)
			require.Equal(t, bigID, out["got"].(map[string]any)["id"])
			require.Equal(t, wantText, out["text"])

			// sendEvent: kwargs cross the bus as JSON and reach the handler.
			sent, err := h.SendEvent(ctx, engine.SendRequest{Sender: "services.Ids", Kwargs: kwargs})
			require.NoError(t, err)
			row := latest(t, h, sent.RequestID, 1)["events.OnIds"]
			require.JSONEq(t, `{"orderId": 9007199254740993, "text": "9007199254740993"}`, string(row.Result))

			// createTimerTask: argDict is stored by the task store and read back to run.
			created, err := h.Tasks().CreateTimerTask(ctx, tasks.CreateRequest{FullName: "tasks.Echo",
				StartTime: time.Now().UnixMilli(), FuncName: "run", TaskType: "tasks.NormalType", ArgDict: kwargs})
			require.NoError(t, err)
			rec := waitTask(t, h, created["taskId"].(string), "success")
			require.Equal(t, bigID, rec["argDict"].(map[string]any)["orderId"])
			require.Equal(t, map[string]any{"orderId": bigID, "text": wantText}, rec["result"])

			// A model row: an Integer field and a number inside a JSON field.
			res, err = h.CallService(ctx, "services.Ids", "store", []any{map[string]any{"ref": bigID, "meta": kwargs}})
			require.NoError(t, err)
			stored := res.Value.(map[string]any)
			require.Equal(t, bigID, stored["ref"])
			require.Equal(t, bigID, stored["meta"].(map[string]any)["orderId"])
			b, err := json.Marshal(stored)
			require.NoError(t, err)
			require.Contains(t, string(b), `"ref":9007199254740993`)
		})
	}
}
