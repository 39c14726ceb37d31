package host_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/timers"
	"github.com/trellis-run/trellis/logstore"
)

// modelApp has a model with lifecycle functions, a listener of its due-date changes, a
// date-field template one second before each row's due date, and a service that uses them.
var modelApp = map[string]string{
	"app.json": `{"name": "models"}`,
	"models/Order/e.json": `{"title": "Order", "type": "models.NormalType", "fields": [
		{"name": "title", "type": "Stext"}, {"name": "qty", "type": "Integer"},
		{"name": "due", "type": "Datetime"}, {"name": "meta", "type": "JSON"}]}`,
	"models/Order/index.js": `
exports.beforeSave = function (row, prev) {
  if (row.title === "refuse") { throw new Error("titles may not be refuse"); }
  row.title = String(row.title || "").toUpperCase();
  return row;
};
exports.afterSave = function (row, prev) {
  // The seed's pattern: keep date-field tasks in step by hand (the host also does it).
  app.getElement("services.TaskSvc").saveDateFieldTask({postData: row, prevData: prev});
};`,
	"events/DueMoved/e.json": `{"title": "Due moved", "type": "events.ModelType", "model": "models.Order",
		"operate": ["afterCreate", "afterUpdate"], "fields": ["due"]}`,
	"events/DueMoved/index.js": `exports.handle = function (event) { return event.kwargs; };`,
	"tasks/Remind/e.json": `{"title": "Remind", "type": "tasks.NormalType", "repeatType": "dateField",
		"dateField": {"model": "models.Order", "field": "due", "offset": "-1s"}, "funcName": "remind"}`,
	"tasks/Remind/index.js": `exports.remind = function (argDict) { return {rowId: argDict.rowId, title: argDict.row.title}; };`,
	"services/Shop/e.json":  `{"title": "Shop", "type": "services.NormalType"}`,
	"services/Shop/index.js": `
const orders = app.getElement("models.Order");
exports.create = function (row) { return orders.create(row); };
exports.update = function (id, patch) { return orders.update(id, patch); };
exports.get = function (id) { return orders.get(id); };
exports.del = function (id) { return orders.delete(id); };
exports.query = function (q) { return orders.query(q); };`,
}

func TestModelsFromJS(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"embedded", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			cfg := host.Config{Sandbox: host.SandboxInProcess, ServeEvents: true}
			if backend == "postgres" {
				cfg.DBDSN = postgresSchema(t)
			}
			h := setup(t, cfg, modelApp)
			ctx := context.Background()
			call := func(fn string, args ...any) (map[string]any, error) {
				res, err := h.CallService(ctx, "services.Shop", fn, args)
				if err != nil {
					return nil, err
				}
				return normalize(res.Value).(map[string]any), nil
			}
			row, err := call("create", map[string]any{"title": "first", "qty": int64(2), "meta": map[string]any{"tags": []any{"a"}}})
			require.NoError(t, err)
			require.Equal(t, "FIRST", row["title"], "beforeSave's returned row is what is stored")
			id := row["id"]
			require.NotNil(t, id)
			got, err := call("get", id)
			require.NoError(t, err)
			require.Equal(t, row, got)
			require.Equal(t, map[string]any{"tags": []any{"a"}}, got["meta"])

			_, err = call("create", map[string]any{"title": "refuse"})
			require.ErrorContains(t, err, "titles may not be refuse")
			_, err = call("create", map[string]any{"title": "x", "qty": "many"})
			require.ErrorContains(t, err, "qty")
			_, err = call("create", map[string]any{"title": "x", "colour": "red"})
			require.ErrorContains(t, err, "colour")
			page, err := call("query", map[string]any{})
			require.NoError(t, err)
			require.EqualValues(t, 1, page["totalCount"], "refused writes stored nothing")

			upd, err := call("update", id, map[string]any{"qty": int64(5)})
			require.NoError(t, err)
			require.EqualValues(t, 5, upd["qty"])
			_, err = call("create", map[string]any{"title": "second", "qty": int64(1)})
			require.NoError(t, err)
			page, err = call("query", map[string]any{"filter": map[string]any{"qty": map[string]any{"gt": 2}}, "orderBy": "-id"})
			require.NoError(t, err)
			require.EqualValues(t, 1, page["totalCount"])
			require.Equal(t, "FIRST", page["rowDatas"].([]any)[0].(map[string]any)["title"])

			deleted, err := call("del", id)
			require.NoError(t, err)
			require.Equal(t, "FIRST", deleted["title"])
			_, err = call("get", id)
			require.ErrorContains(t, err, "not found")
		})
	}
}

// postgresSchema is a DSN of TRELLIS_TEST_POSTGRES whose search_path is a fresh schema, so the
// test's tables are its own.
func postgresSchema(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("TRELLIS_TEST_POSTGRES")
	if dsn == "" {
		t.Skip(`TRELLIS_TEST_POSTGRES is not set: run eval "$(scripts/services.sh start)" first to run the PostgreSQL tests`)
	}
	schema := fmt.Sprintf("t_host_%d", time.Now().UnixNano())
	conn, err := pgx.Connect(context.Background(), dsn)
	require.NoError(t, err)
	_, err = conn.Exec(context.Background(), "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		_ = conn.Close(context.Background())
	})
	sep := "?"
	if containsQuery(dsn) {
		sep = "&"
	}
	return dsn + sep + "search_path=" + schema
}

func containsQuery(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '?' {
			return true
		}
	}
	return false
}

func TestModelEventsAndDateFieldTasks(t *testing.T) {
	t.Parallel()
	h := setup(t, host.Config{Sandbox: host.SandboxInProcess, ServeEvents: true}, modelApp)
	ctx := context.Background()
	call := func(fn string, args ...any) map[string]any {
		res, err := h.CallService(ctx, "services.Shop", fn, args)
		require.NoError(t, err)
		return normalize(res.Value).(map[string]any)
	}
	waiting := func() []map[string]any {
		page, err := h.Tasks().ListTasks(ctx, timers.ListQuery{FullName: "tasks.Remind", Status: "waiting"})
		require.NoError(t, err)
		var out []map[string]any
		for _, r := range page["rowDatas"].([]any) {
			out = append(out, r.(map[string]any))
		}
		return out
	}
	due := time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
	row := call("create", map[string]any{"title": "soon", "due": due.UnixMilli()})
	id := row["id"]

	// One pending task per row, at due - 1s, even though afterSave also asked for it.
	w := waiting()
	require.Len(t, w, 1)
	require.Equal(t, due.Add(-time.Second).In(h.Location()).Format("2006-01-02 15:04:05"), w[0]["startTime"])
	require.Equal(t, id, normalize(w[0]["argDict"]).(map[string]any)["rowId"])

	// Moving the date moves the task; other fields leave it alone.
	later := due.Add(time.Hour)
	call("update", id, map[string]any{"due": later.UnixMilli()})
	w = waiting()
	require.Len(t, w, 1)
	require.Equal(t, later.Add(-time.Second).In(h.Location()).Format("2006-01-02 15:04:05"), w[0]["startTime"])
	call("update", id, map[string]any{"qty": int64(3)})
	require.Len(t, waiting(), 1)
	// Clearing it removes the task; setting it again brings one back; deleting the row removes it.
	call("update", id, map[string]any{"due": nil})
	require.Empty(t, waiting())
	call("update", id, map[string]any{"due": due.UnixMilli()})
	require.Len(t, waiting(), 1)
	other := call("create", map[string]any{"title": "other", "due": later.UnixMilli()})
	require.Len(t, waiting(), 2)
	call("del", other["id"])
	require.Len(t, waiting(), 1)

	// The task fires at its time with {rowId, row}.
	taskID := waiting()[0]["taskId"].(string)
	rec := waitTask(t, h, taskID, "success")
	require.Equal(t, map[string]any{"rowId": id, "title": "SOON"}, normalize(rec["result"]))

	// Model listeners heard create and the due changes, not the qty update.
	require.Eventually(t, func() bool {
		require.NoError(t, h.LogWriter().Flush(ctx))
		page, err := h.LogStore().Query(ctx, logstore.Query{FullName: "events.DueMoved", Status: logstore.StatusSuccess})
		require.NoError(t, err)
		return page.TotalCount == 5 // create soon, due later, due nil, due again, create other
	}, 20*time.Second, 20*time.Millisecond)
	page, err := h.LogStore().Query(ctx, logstore.Query{FullName: "events.DueMoved", PageSize: 100})
	require.NoError(t, err)
	operates := map[string]int{}
	for _, r := range page.RowDatas {
		var kw map[string]any
		require.NoError(t, json.Unmarshal(r.Kwargs, &kw))
		operates[kw["operate"].(string)]++
		require.Contains(t, kw, "postData")
		require.Contains(t, kw, "prevData")
	}
	require.Equal(t, map[string]int{"afterCreate": 2, "afterUpdate": 3}, operates)
}
