package modelrt_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/modelrt"
	"github.com/trellis-run/trellis/host/models"
	"github.com/trellis-run/trellis/host/vocab"
)

// runCases runs every case against stores made by open; each backend's test calls it.
func runCases(t *testing.T, open opener) {
	cases := []struct {
		name string
		fn   func(t *testing.T, open opener)
	}{
		{"CreateOrder", testCreateOrder},
		{"BeforeSaveReplaces", testBeforeSaveReplaces},
		{"BeforeSaveRefuses", testBeforeSaveRefuses},
		{"AfterSaveFails", testAfterSaveFails},
		{"Update", testUpdate},
		{"UpdateBadInput", testUpdateBadInput},
		{"Save", testSave},
		{"Delete", testDelete},
		{"Query", testQuery},
		{"EmitAndDateFieldsFail", testAfterStepsFail},
		{"UnknownNames", testUnknownNames},
		{"CallArguments", testCallArguments},
		{"FromJavaScript", testFromJavaScript},
		{"EnsureSchemaChange", testEnsureSchemaChange},
		{"Import", testImport},
		{"ImportHoldsNoLock", testImportHoldsNoLock},
		{"ConcurrentUpdatesKeepEachOther", testConcurrentUpdates},
		{"StoreClosed", testStoreClosed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t, open)
		})
	}
}

var caller = modelrt.Caller{Element: "services.Shop", RequestID: "req_1", NodeID: "node_1"}

func testCreateOrder(t *testing.T, open opener) {
	b := setup(t, open, nil)
	ctx := within(t)
	row, err := b.rt.Create(ctx, "models.Order", map[string]any{
		"id": 999, "title": "first", "qty": float64(3), "price": 2.5, "paid": true,
		"dueDate": "2024-05-01 08:00:00", "day": "2024-05-02", "meta": map[string]any{"tags": []any{"a", "ü"}},
	}, caller)
	require.NoError(t, err)
	id, ok := row["id"].(int64)
	require.True(t, ok, "id is %T", row["id"])
	require.NotEqual(t, int64(999), id, "create ignores a given id")
	require.Equal(t, "first", row["title"])
	require.Equal(t, int64(3), row["qty"])
	require.Equal(t, "2024-05-01 08:00:00", row["dueDate"], "datetimes come back in the app timezone")
	require.Nil(t, row["note"], "every field is present, null when not set")
	require.Contains(t, row, "note")

	// The datetime was read in Asia/Shanghai: 08:00 there is 00:00 UTC.
	res, err := b.rt.Query(ctx, "models.Order", models.Query{Filter: map[string]any{"dueDate": "2024-05-01T00:00:00Z"}})
	require.NoError(t, err)
	require.Equal(t, int64(1), res["totalCount"])

	got, err := b.rt.Get(ctx, "models.Order", id)
	require.NoError(t, err)
	require.Equal(t, row, got)

	events, dates, life := b.take()
	require.Equal(t, []string{"beforeSave", "afterSave"}, lifeFns(life))
	before := life[0].Args[0].(map[string]any)
	require.Nil(t, before["id"], "beforeSave sees the row before it has an id")
	require.Equal(t, "first", before["title"])
	require.Nil(t, life[0].Args[1], "prev is null on create")
	require.Equal(t, row, life[1].Args[0], "afterSave gets the stored row")
	require.Nil(t, life[1].Args[1])
	require.Equal(t, caller, life[0].Caller)

	require.Len(t, events, 1)
	ev := events[0]
	require.Equal(t, "models.Order", ev.Model)
	require.Equal(t, modelrt.OpAfterCreate, ev.Operate)
	require.Equal(t, row, ev.PostData)
	require.Nil(t, ev.PrevData)
	require.Equal(t, []string{"id", "title", "qty", "price", "paid", "dueDate", "day", "meta"}, ev.Changed, "every set field, in schema order")
	require.Equal(t, caller, ev.Caller)

	require.Len(t, dates, 1)
	require.Nil(t, dates[0].Prev)
	require.Equal(t, row, dates[0].Post)
}

func testBeforeSaveReplaces(t *testing.T, open opener) {
	b := setup(t, open, nil)
	ctx := within(t)
	row, err := b.rt.Create(ctx, "models.Order", map[string]any{"title": "shout", "qty": 1}, caller)
	require.NoError(t, err)
	require.Equal(t, "SHOUT", row["title"])
	require.Equal(t, int64(1), row["qty"], "a returned row keeps what it holds")

	// On create the returned object is the whole row: what it leaves out is not stored.
	row, err = b.rt.Create(ctx, "models.Order", map[string]any{"title": "partial", "qty": 5}, caller)
	require.NoError(t, err)
	require.Equal(t, "from beforeSave", row["note"])
	require.Nil(t, row["title"])
	require.Nil(t, row["qty"])

	// On update it is laid over the row: fields it leaves out keep their values.
	base, err := b.rt.Create(ctx, "models.Order", map[string]any{"title": "plain", "qty": 7}, caller)
	require.NoError(t, err)
	id := base["id"].(int64)
	row, err = b.rt.Update(ctx, "models.Order", id, map[string]any{"title": "partial"}, caller)
	require.NoError(t, err)
	require.Equal(t, "partial", row["title"])
	require.Equal(t, int64(7), row["qty"])
	require.Equal(t, "from beforeSave", row["note"])

	// beforeSave sees prev on update.
	row, err = b.rt.Update(ctx, "models.Order", id, map[string]any{"note": "echo-prev"}, caller)
	require.NoError(t, err)
	require.Equal(t, "prev title partial", row["note"])
}

func testBeforeSaveRefuses(t *testing.T, open opener) {
	b := setup(t, open, nil)
	ctx := within(t)
	base, err := b.rt.Create(ctx, "models.Order", map[string]any{"title": "base", "qty": 1}, caller)
	require.NoError(t, err)
	b.take()

	_, err = b.rt.Create(ctx, "models.Order", map[string]any{"title": "neg", "qty": -1}, caller)
	requireCode(t, err, modelrt.CodeJSError, modelrt.ErrLifecycle)
	var je *jsvm.Error
	require.ErrorAs(t, err, &je)
	require.Contains(t, je.Message, "qty must not be negative", "JavaScript sees the message it threw")
	require.Contains(t, je.Stack+je.File, "models/Order/index.js")
	require.Contains(t, err.Error(), "nothing was stored")

	_, err = b.rt.Update(ctx, "models.Order", base["id"].(int64), map[string]any{"qty": -5}, caller)
	requireCode(t, err, modelrt.CodeJSError, modelrt.ErrLifecycle)

	for _, title := range []string{"bad-return", "bad-field", "bad-type"} {
		_, err = b.rt.Create(ctx, "models.Order", map[string]any{"title": title}, caller)
		requireCode(t, err, modelrt.CodeJSError, modelrt.ErrLifecycle)
		require.Contains(t, err.Error(), "beforeSave of models.Order returned")
	}
	// A lifecycle function stopped by its limits keeps the sandbox's code.
	_, err = b.rt.Create(ctx, "models.Order", map[string]any{"title": "spin"}, caller)
	requireCode(t, err, vocab.CodeTimeout, modelrt.ErrLifecycle)

	require.Equal(t, int64(1), b.count(t, "models.Order"), "nothing was stored")
	got, err := b.rt.Get(ctx, "models.Order", base["id"].(int64))
	require.NoError(t, err)
	require.Equal(t, base, got, "the refused update changed nothing")
	events, dates, life := b.take()
	require.Empty(t, events, "no event for a refused write")
	require.Empty(t, dates)
	require.NotContains(t, lifeFns(life), "afterSave")
}

func testAfterSaveFails(t *testing.T, open opener) {
	b := setup(t, open, nil)
	ctx := within(t)
	row, err := b.rt.Create(ctx, "models.Order", map[string]any{"title": "after-fails"}, caller)
	requireCode(t, err, modelrt.CodeJSError, modelrt.ErrAfterWrite)
	require.ErrorIs(t, err, modelrt.ErrLifecycle)
	require.NotNil(t, row, "the stored row comes back with the error")
	id := row["id"].(int64)
	var je *jsvm.Error
	require.ErrorAs(t, err, &je)
	require.Contains(t, je.Message, "afterSave broke")
	require.Contains(t, je.Message, fmt.Sprintf("row %d of models.Order was created", id), "JavaScript is told the row was saved")

	got, err := b.rt.Get(ctx, "models.Order", id)
	require.NoError(t, err)
	require.Equal(t, "after-fails", got["title"])
	events, dates, _ := b.take()
	require.Len(t, events, 1, "the row was written, so its event is still sent")
	require.Len(t, dates, 1)
}

func testUpdate(t *testing.T, open opener) {
	b := setup(t, open, nil)
	ctx := within(t)
	prev, err := b.rt.Create(ctx, "models.Order", map[string]any{"title": "u", "qty": 1, "dueDate": "2024-01-01 10:00:00", "meta": map[string]any{"a": 1}}, caller)
	require.NoError(t, err)
	id := prev["id"].(int64)
	b.take()

	// A datetime given in another form but the same instant, and equal JSON, are no change.
	post, err := b.rt.Update(ctx, "models.Order", id, map[string]any{
		"qty": int64(2), "dueDate": "2024-01-01T02:00:00Z", "meta": map[string]any{"a": 1}, "paid": false,
	}, caller)
	require.NoError(t, err)
	require.Equal(t, int64(2), post["qty"])
	require.Equal(t, false, post["paid"])
	require.Equal(t, "u", post["title"], "fields not in the patch keep their values")

	events, dates, life := b.take()
	require.Equal(t, []string{"beforeSave", "afterSave"}, lifeFns(life))
	require.Equal(t, prev, life[0].Args[1], "beforeSave gets prev")
	require.Equal(t, post, life[1].Args[0])
	require.Equal(t, prev, life[1].Args[1], "afterSave gets prev")
	require.Len(t, events, 1)
	require.Equal(t, modelrt.OpAfterUpdate, events[0].Operate)
	require.Equal(t, prev, events[0].PrevData)
	require.Equal(t, post, events[0].PostData)
	require.Equal(t, []string{"qty", "paid"}, events[0].Changed)
	require.Len(t, dates, 1)
	require.Equal(t, prev, dates[0].Prev)
	require.Equal(t, post, dates[0].Post)

	// An update that changes nothing is still a write: it is announced with nothing changed.
	same, err := b.rt.Update(ctx, "models.Order", id, map[string]any{"qty": 2}, caller)
	require.NoError(t, err)
	require.Equal(t, post, same)
	events, _, _ = b.take()
	require.Len(t, events, 1)
	require.Empty(t, events[0].Changed)

	// null clears a field.
	cleared, err := b.rt.Update(ctx, "models.Order", id, map[string]any{"dueDate": nil}, caller)
	require.NoError(t, err)
	require.Nil(t, cleared["dueDate"])
	events, _, _ = b.take()
	require.Equal(t, []string{"dueDate"}, events[0].Changed)

	// The id may be repeated in the patch, unchanged.
	_, err = b.rt.Update(ctx, "models.Order", id, map[string]any{"id": id, "title": "again"}, caller)
	require.NoError(t, err)
}

func testUpdateBadInput(t *testing.T, open opener) {
	b := setup(t, open, nil)
	ctx := within(t)
	row, err := b.rt.Create(ctx, "models.Order", map[string]any{"title": "keep", "qty": 1}, caller)
	require.NoError(t, err)
	id := row["id"].(int64)
	b.take()

	_, err = b.rt.Update(ctx, "models.Order", id+100, map[string]any{"qty": 2}, caller)
	requireCode(t, err, modelrt.CodeNotFound, models.ErrNotFound)

	_, err = b.rt.Update(ctx, "models.Order", id, map[string]any{"colour": "red"}, caller)
	requireCode(t, err, modelrt.CodeInvalidArgument, models.ErrUnknownField)
	require.Contains(t, err.Error(), `"colour"`)

	_, err = b.rt.Update(ctx, "models.Order", id, map[string]any{"qty": "abc"}, caller)
	requireCode(t, err, modelrt.CodeInvalidArgument, models.ErrInvalidValue)
	require.Contains(t, err.Error(), `"qty"`)

	_, err = b.rt.Update(ctx, "models.Order", id, map[string]any{"qty": 1.5}, caller)
	requireCode(t, err, modelrt.CodeInvalidArgument, models.ErrInvalidValue)

	_, err = b.rt.Update(ctx, "models.Order", id, map[string]any{"id": id + 1, "qty": 2}, caller)
	requireCode(t, err, modelrt.CodeInvalidArgument, modelrt.ErrInvalidArgument)
	require.Contains(t, err.Error(), "id cannot change")

	_, err = b.rt.Update(ctx, "models.Order", id, nil, caller)
	requireCode(t, err, modelrt.CodeInvalidArgument, modelrt.ErrInvalidArgument)

	_, err = b.rt.Create(ctx, "models.Order", map[string]any{"title": strings.Repeat("x", 256)}, caller)
	requireCode(t, err, modelrt.CodeInvalidArgument, models.ErrInvalidValue)

	got, err := b.rt.Get(ctx, "models.Order", id)
	require.NoError(t, err)
	require.Equal(t, row, got, "nothing was stored")
	require.Equal(t, int64(1), b.count(t, "models.Order"))
	events, dates, life := b.take()
	require.Empty(t, events)
	require.Empty(t, dates)
	require.Empty(t, life, "bad input is refused before any lifecycle function runs")
}

func testSave(t *testing.T, open opener) {
	b := setup(t, open, nil)
	ctx := within(t)
	created, err := b.rt.Save(ctx, "models.Plain", map[string]any{"name": "s", "n": 1}, caller)
	require.NoError(t, err)
	id := created["id"].(int64)

	updated, err := b.rt.Save(ctx, "models.Plain", map[string]any{"id": fmt.Sprint(id), "n": 2}, caller)
	require.NoError(t, err)
	require.Equal(t, id, updated["id"])
	require.Equal(t, "s", updated["name"], "save of an existing row is an update: other fields stay")
	require.Equal(t, int64(2), updated["n"])

	fresh, err := b.rt.Save(ctx, "models.Plain", map[string]any{"id": id + 1000, "name": "new"}, caller)
	require.NoError(t, err)
	require.NotEqual(t, id+1000, fresh["id"], "an id of no row makes a new row with an id of the store's choosing")

	_, err = b.rt.Save(ctx, "models.Plain", map[string]any{"id": "x1", "name": "bad"}, caller)
	requireCode(t, err, modelrt.CodeInvalidArgument, modelrt.ErrInvalidArgument)

	events, _, life := b.take()
	require.Empty(t, life, "models.Plain has no index.js: the sandbox is not asked")
	ops := []string{}
	for _, ev := range events {
		ops = append(ops, ev.Operate)
	}
	require.Equal(t, []string{"afterCreate", "afterUpdate", "afterCreate"}, ops)
	require.Equal(t, int64(2), b.count(t, "models.Plain"))
}

func testDelete(t *testing.T, open opener) {
	b := setup(t, open, nil)
	ctx := within(t)
	row, err := b.rt.Create(ctx, "models.Order", map[string]any{"title": "gone", "qty": 4}, caller)
	require.NoError(t, err)
	id := row["id"].(int64)
	b.take()

	deleted, err := b.rt.Delete(ctx, "models.Order", id, caller)
	require.NoError(t, err)
	require.Equal(t, row, deleted, "delete returns the deleted row")
	_, err = b.rt.Get(ctx, "models.Order", id)
	requireCode(t, err, modelrt.CodeNotFound, models.ErrNotFound)

	events, dates, life := b.take()
	require.Equal(t, []string{"afterDelete"}, lifeFns(life))
	require.Equal(t, []any{row}, life[0].Args)
	require.Len(t, events, 1)
	require.Equal(t, modelrt.OpAfterDelete, events[0].Operate)
	require.Equal(t, row, events[0].PrevData)
	require.Nil(t, events[0].PostData)
	require.Equal(t, []string{"id", "title", "qty"}, events[0].Changed)
	require.Len(t, dates, 1)
	require.Equal(t, row, dates[0].Prev)
	require.Nil(t, dates[0].Post)

	_, err = b.rt.Delete(ctx, "models.Order", id, caller)
	requireCode(t, err, modelrt.CodeNotFound, models.ErrNotFound)

	// afterDelete failing does not bring the row back.
	row, err = b.rt.Create(ctx, "models.Order", map[string]any{"title": "undeletable"}, caller)
	require.NoError(t, err)
	b.take()
	deleted, err = b.rt.Delete(ctx, "models.Order", row["id"].(int64), caller)
	requireCode(t, err, modelrt.CodeJSError, modelrt.ErrAfterWrite)
	require.Contains(t, err.Error(), "was deleted")
	require.Equal(t, row, deleted)
	_, err = b.rt.Get(ctx, "models.Order", row["id"].(int64))
	require.ErrorIs(t, err, models.ErrNotFound)
	events, _, _ = b.take()
	require.Len(t, events, 1)
}

func testQuery(t *testing.T, open opener) {
	b := setup(t, open, nil)
	ctx := within(t)
	for i := 1; i <= 7; i++ {
		_, err := b.rt.Create(ctx, "models.Plain", map[string]any{"name": fmt.Sprintf("p%d", i), "n": i % 3}, caller)
		require.NoError(t, err)
	}
	res, err := b.rt.Query(ctx, "models.Plain", models.Query{Filter: map[string]any{"n": map[string]any{"gte": 1}}, OrderBy: "-n,name", Page: 2, PageSize: 2})
	require.NoError(t, err)
	require.Equal(t, int64(5), res["totalCount"])
	rows := res["rowDatas"].([]any)
	require.Len(t, rows, 2)
	// Ordered by -n, then name: p2, p5 (n=2), p1, p4, p7 (n=1); the second page of two is p1, p4.
	require.Equal(t, "p1", rows[0].(map[string]any)["name"])
	require.Equal(t, "p4", rows[1].(map[string]any)["name"])

	_, err = b.rt.Query(ctx, "models.Plain", models.Query{Filter: map[string]any{"colour": "red"}})
	requireCode(t, err, modelrt.CodeInvalidArgument, models.ErrUnknownField)
	_, err = b.rt.Query(ctx, "models.Plain", models.Query{Filter: map[string]any{"n": "many"}})
	requireCode(t, err, modelrt.CodeInvalidArgument, models.ErrInvalidValue)
	_, err = b.rt.Query(ctx, "models.Plain", models.Query{PageSize: 5000})
	requireCode(t, err, modelrt.CodeInvalidArgument, models.ErrInvalidValue)
	_, err = b.rt.Query(ctx, "models.Plain", models.Query{OrderBy: "-colour"})
	requireCode(t, err, modelrt.CodeInvalidArgument, models.ErrUnknownField)
}

func testAfterStepsFail(t *testing.T, open opener) {
	b := setup(t, open, nil)
	ctx := within(t)
	down := errors.New("bus is down")
	b.setHooks(func(modelrt.Event) error { return down }, nil)
	row, err := b.rt.Create(ctx, "models.Plain", map[string]any{"name": "e"}, caller)
	requireCode(t, err, modelrt.CodeUnavailable, modelrt.ErrAfterWrite)
	require.ErrorIs(t, err, down)
	require.Contains(t, err.Error(), "was created, but its afterCreate event was not sent")
	require.NotNil(t, row)
	got, err := b.rt.Get(ctx, "models.Plain", row["id"].(int64))
	require.NoError(t, err, "the write is not undone")
	require.Equal(t, row, got)
	_, dates, _ := b.take()
	require.Len(t, dates, 1, "date fields are kept in step even when the event failed")

	// A coded error keeps its code; a DateFields failure is reported alike.
	b.setHooks(nil, func(dateCall) error {
		return &jsvm.Error{Code: vocab.CodeTimeout, Message: "timers did not answer"}
	})
	_, err = b.rt.Update(ctx, "models.Plain", row["id"].(int64), map[string]any{"n": 5}, caller)
	requireCode(t, err, vocab.CodeTimeout, modelrt.ErrAfterWrite)
	require.Contains(t, err.Error(), "date-field tasks were not updated")
	events, _, _ := b.take()
	require.Len(t, events, 1)
	got, err = b.rt.Get(ctx, "models.Plain", row["id"].(int64))
	require.NoError(t, err)
	require.Equal(t, int64(5), got["n"])

	// The date-field tasks are kept in step even when the caller goes away during the event.
	cctx, cancel := context.WithCancel(ctx)
	b.setHooks(func(modelrt.Event) error {
		cancel() // the caller leaves while the event is being sent
		return nil
	}, nil)
	b.take()
	_, err = b.rt.Delete(cctx, "models.Plain", row["id"].(int64), caller)
	require.NoError(t, err)
	_, dates, _ = b.take()
	require.Len(t, dates, 1)
	require.NoError(t, dates[0].CtxErr, "DateFields runs detached from the caller's cancellation")
}

func testUnknownNames(t *testing.T, open opener) {
	b := setup(t, open, nil)
	ctx := within(t)
	_, err := b.rt.Create(ctx, "models.Nope", map[string]any{}, caller)
	requireCode(t, err, modelrt.CodeNotFound, modelrt.ErrUnknownModel)
	require.Contains(t, err.Error(), "models.Order", "the message lists the app's models")
	_, err = b.rt.Get(ctx, "models.NormalType", 1)
	requireCode(t, err, modelrt.CodeNotFound, modelrt.ErrUnknownModel)
	_, err = b.rt.Schema("services.Shop")
	requireCode(t, err, modelrt.CodeNotFound, modelrt.ErrUnknownModel)
	_, err = b.rt.Call(ctx, "models.Plain", "truncate", nil, caller)
	requireCode(t, err, modelrt.CodeNotFound, modelrt.ErrUnknownMethod)
	require.Contains(t, err.Error(), "create, get, update, save, delete, query")
	_, err = b.rt.Call(ctx, "models.Nope", "get", []any{1}, caller)
	requireCode(t, err, modelrt.CodeNotFound, modelrt.ErrUnknownModel)

	s, err := b.rt.Schema("models.Order")
	require.NoError(t, err)
	require.Equal(t, "models.Order", s.Model)
	f, ok := s.Field("dueDate")
	require.True(t, ok)
	require.Equal(t, models.TypeDatetime, f.Type)
}

func testCallArguments(t *testing.T, open opener) {
	b := setup(t, open, nil)
	ctx := within(t)
	row, err := b.rt.Call(ctx, "models.Plain", "create", []any{map[string]any{"name": "c", "n": float64(1)}}, caller)
	require.NoError(t, err)
	id := row.(map[string]any)["id"].(int64)
	sid := fmt.Sprint(id)

	good := []struct {
		method string
		args   []any
	}{
		{"get", []any{id}},
		{"get", []any{float64(id)}},
		{"get", []any{sid}},
		{"get", []any{map[string]any{"id": sid}}},
		{"update", []any{id, map[string]any{"n": 2}}},
		{"update", []any{map[string]any{"id": float64(id), "patch": map[string]any{"n": 3}}}},
		{"save", []any{map[string]any{"id": id, "n": 4}}},
		{"query", nil},
		{"query", []any{nil}},
		{"query", []any{map[string]any{"filter": map[string]any{"n": 4}, "orderBy": "-id", "page": float64(1), "pageSize": float64(5)}}},
		{"query", []any{map[string]any{"n": 4}, "name", 1, 5}},
	}
	for _, g := range good {
		_, err := b.rt.Call(ctx, "models.Plain", g.method, g.args, caller)
		require.NoError(t, err, "%s%v", g.method, g.args)
	}
	res, err := b.rt.Call(ctx, "models.Plain", "query", []any{map[string]any{"filter": map[string]any{"n": 4}}}, caller)
	require.NoError(t, err)
	require.Equal(t, int64(1), res.(map[string]any)["totalCount"])

	bad := []struct {
		method string
		args   []any
		want   string
	}{
		{"get", []any{1.5}, "id must be a whole number"},
		{"get", []any{"12a"}, "id must be a whole number"},
		{"get", []any{0}, "greater than 0"},
		{"get", []any{-3}, "greater than 0"},
		{"get", []any{true}, "a boolean"},
		{"get", []any{}, "takes one argument"},
		{"get", []any{1, 2}, "takes one argument"},
		{"get", []any{map[string]any{"ident": 1}}, "unknown: ident"},
		{"get", []any{map[string]any{}}, "needs id"},
		{"delete", []any{nil}, "id must be a whole number"},
		{"update", []any{id, "x"}, "update needs (id, patch): patch must be an object, got a string"},
		{"update", []any{"x", map[string]any{}}, "id must be a whole number"},
		{"update", []any{map[string]any{"id": id}}, "needs both id and patch"},
		{"update", []any{map[string]any{"id": id, "patch": map[string]any{}, "force": true}}, "unknown: force"},
		{"update", []any{id}, "update needs (id, patch) or ({id, patch})"},
		{"update", []any{id, map[string]any{}, 3}, "got 3 arguments"},
		{"create", []any{}, "takes one argument"},
		{"create", []any{1}, "row must be an object, got a number"},
		{"create", []any{[]any{}}, "got an array"},
		{"save", []any{"row"}, "row must be an object, got a string"},
		{"query", []any{map[string]any{"n": 4}}, "query({filter: {...}})"},
		{"query", []any{"n = 4"}, "got a string"},
		{"query", []any{map[string]any{"page": 1.5}}, "page must be a whole number"},
		{"query", []any{map[string]any{"pageSize": -1}}, "pageSize must be a whole number"},
		{"query", []any{map[string]any{"orderBy": 3}}, "orderBy must be a string"},
		{"query", []any{1, 2, 3, 4, 5}, "at most 4 arguments"},
	}
	for _, c := range bad {
		_, err := b.rt.Call(ctx, "models.Plain", c.method, c.args, caller)
		requireCode(t, err, modelrt.CodeInvalidArgument, modelrt.ErrInvalidArgument)
		require.Contains(t, err.Error(), c.want, "%s%v", c.method, c.args)
	}
	got, err := b.rt.Get(ctx, "models.Plain", id)
	require.NoError(t, err)
	require.Equal(t, int64(4), got["n"], "the bad calls changed nothing")
	require.Equal(t, int64(1), b.count(t, "models.Plain"))
}

func testFromJavaScript(t *testing.T, open opener) {
	b := setup(t, open, nil)
	res, err := b.vm.Execute(within(t), jsvm.Call{Element: "services.Shop", Function: "run", Args: []any{}, RequestID: "req_js", NodeID: "node_js"})
	require.NoError(t, err)
	out := res.Value.(map[string]any)
	a := out["a"].(map[string]any)
	require.Equal(t, "a", a["name"])
	require.Equal(t, a, out["got"])
	require.Equal(t, a, out["got2"])
	require.Equal(t, int64(2), out["up"].(map[string]any)["n"])
	require.Equal(t, int64(3), out["up2"].(map[string]any)["n"])
	saved := out["saved"].(map[string]any)
	require.Equal(t, "a2", saved["name"])
	require.Equal(t, int64(3), saved["n"])
	q := out["q"].(map[string]any)
	require.Equal(t, int64(1), q["totalCount"])
	require.Equal(t, []any{saved}, q["rowDatas"])
	require.Equal(t, int64(1), out["q2"].(map[string]any)["totalCount"], "positional query arguments")
	require.Equal(t, saved, out["del"])
	missing := out["missing"].(map[string]any)
	require.Equal(t, modelrt.CodeNotFound, missing["code"])
	require.Contains(t, missing["message"], "not found")

	events, _, _ := b.take()
	require.Len(t, events, 5) // create, update, update, save, delete
	require.Equal(t, modelrt.Caller{Element: "services.Shop", RequestID: "req_js", NodeID: "node_js"}, events[0].Caller)

	fail := func(model, method string, args ...any) map[string]any {
		res, err := b.vm.Execute(within(t), jsvm.Call{Element: "services.Shop", Function: "fail", Args: []any{model, method, args}})
		require.NoError(t, err)
		require.NotNil(t, res.Value, "%s.%s%v did not throw", model, method, args)
		return res.Value.(map[string]any)
	}
	e := fail("models.Plain", "update", 1, "x")
	require.Equal(t, modelrt.CodeInvalidArgument, e["code"])
	require.Contains(t, e["message"], "patch must be an object, got a string")
	e = fail("models.Plain", "create", map[string]any{"n": "many"})
	require.Equal(t, modelrt.CodeInvalidArgument, e["code"])
	require.Contains(t, e["message"], `"n" is Integer`)
	e = fail("models.Order", "create", map[string]any{"title": "x", "qty": -1})
	require.Equal(t, modelrt.CodeJSError, e["code"], "a lifecycle function that threw is js_error in JavaScript too")
	require.Contains(t, e["message"], "qty must not be negative")
	e = fail("models.Order", "create", map[string]any{"title": "after-fails"})
	require.Equal(t, modelrt.CodeJSError, e["code"])
	require.Contains(t, e["message"], "was created")
}

func testEnsureSchemaChange(t *testing.T, open opener) {
	b := setup(t, open, nil)
	ctx := within(t)
	_, err := b.rt.Create(ctx, "models.Plain", map[string]any{"name": "old", "n": 1}, caller)
	require.NoError(t, err)

	// Adding a field is fine: the table grows.
	grown := map[string]string{}
	for k, v := range testApp {
		grown[k] = v
	}
	grown["models/Plain/e.json"] = `{"title": "Plain", "type": "models.NormalType", "fields": [
		{"name": "name", "type": "Stext"}, {"name": "n", "type": "Integer"}, {"name": "extra", "type": "Ltext"}]}`
	b.snap.Store(loadApp(t, writeApp(t, grown)))
	require.NoError(t, b.rt.Ensure(ctx, b.snap.Load()))
	row, err := b.rt.Create(ctx, "models.Plain", map[string]any{"name": "new", "extra": "more"}, caller)
	require.NoError(t, err)
	require.Equal(t, "more", row["extra"])

	// Changing a field's type is refused: the error names the model and says what to do, and
	// the model's calls fail the same way until its declaration is fixed.
	changed := map[string]string{}
	for k, v := range grown {
		changed[k] = v
	}
	changed["models/Plain/e.json"] = `{"title": "Plain", "type": "models.NormalType", "fields": [
		{"name": "name", "type": "Stext"}, {"name": "n", "type": "Stext"}]}`
	b.snap.Store(loadApp(t, writeApp(t, changed)))
	err = b.rt.Ensure(ctx, b.snap.Load())
	requireCode(t, err, modelrt.CodeConflict, models.ErrSchema)
	require.Contains(t, err.Error(), "models.Plain")
	require.Contains(t, err.Error(), "change the type back")
	require.NotContains(t, err.Error(), "models.Order", "only the model with the problem is named")
	_, err = b.rt.Create(ctx, "models.Plain", map[string]any{"name": "x", "n": "text"}, caller)
	requireCode(t, err, modelrt.CodeConflict, models.ErrSchema)
	_, err = b.rt.Create(ctx, "models.Order", map[string]any{"title": "fine"}, caller)
	require.NoError(t, err, "other models keep working")

	// Back to the stored type: it works again, with the rows kept.
	b.snap.Store(loadApp(t, writeApp(t, grown)))
	require.NoError(t, b.rt.Ensure(ctx, b.snap.Load()))
	require.Equal(t, int64(2), b.count(t, "models.Plain"))
}

func testImport(t *testing.T, open opener) {
	b := setup(t, open, nil)
	ctx := within(t)
	n := 2*modelrt.ImportChunk + 500
	rows := make([]map[string]any, n)
	for i := range rows {
		rows[i] = map[string]any{"title": fmt.Sprintf("r%d", i), "qty": float64(-i), "dueDate": "2030-01-01 00:00:00"}
	}
	rows[7]["id"] = 1_000_000 // imports keep the ids they give
	b.take()
	stored, err := b.rt.Import(ctx, "models.Order", rows, caller)
	require.NoError(t, err)
	require.Equal(t, n, stored)
	require.Equal(t, int64(n), b.count(t, "models.Order"))
	got, err := b.rt.Get(ctx, "models.Order", 1_000_000)
	require.NoError(t, err)
	require.Equal(t, "r7", got["title"])
	require.Equal(t, int64(-7), got["qty"], "beforeSave would have refused this: bulk import bypasses lifecycle functions")

	events, dates, life := b.take()
	require.Empty(t, life)
	require.Len(t, events, n, "every imported row is announced")
	require.Len(t, dates, n)
	require.Equal(t, modelrt.OpAfterCreate, events[0].Operate)
	require.Equal(t, "r0", events[0].PostData["title"])
	require.Equal(t, "2030-01-01 00:00:00", dates[n-1].Post["dueDate"])

	// One bad row: nothing is stored and the error says which rows.
	bad := []map[string]any{{"title": "ok"}, {"qty": "lots"}, {"colour": "red"}, nil}
	stored, err = b.rt.Import(ctx, "models.Order", bad, caller)
	requireCode(t, err, modelrt.CodeInvalidArgument, models.ErrInvalidValue)
	require.Zero(t, stored)
	for _, want := range []string{"row 1:", "row 2:", "row 3 is null", "nothing was stored"} {
		require.Contains(t, err.Error(), want)
	}
	require.Equal(t, int64(n), b.count(t, "models.Order"))

	// The event failing stops the import and says how far it got.
	b.setHooks(func(ev modelrt.Event) error {
		if ev.PostData["title"] == "f3" {
			return errors.New("bus is down")
		}
		return nil
	}, nil)
	more := make([]map[string]any, 5)
	for i := range more {
		more[i] = map[string]any{"title": fmt.Sprintf("f%d", i)}
	}
	stored, err = b.rt.Import(ctx, "models.Order", more, caller)
	requireCode(t, err, modelrt.CodeUnavailable, modelrt.ErrAfterWrite)
	require.Equal(t, 5, stored, "the chunk was stored before its events were sent")
	require.Contains(t, err.Error(), "5 rows were stored, then row 3 failed")
}

func testImportHoldsNoLock(t *testing.T, open opener) {
	b := setup(t, open, nil)
	ctx := within(t)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	b.setHooks(func(ev modelrt.Event) error {
		if ev.PostData["name"] == "imported" {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-release
		}
		return nil
	}, nil)
	done := make(chan error, 1)
	go func() {
		_, err := b.rt.Import(ctx, "models.Plain", []map[string]any{{"name": "imported"}, {"name": "imported"}}, caller)
		done <- err
	}()
	<-entered
	// Import is inside Emit now; a create and a get go through meanwhile.
	var wg sync.WaitGroup
	wg.Add(1)
	var got map[string]any
	var cerr error
	go func() {
		defer wg.Done()
		var row map[string]any
		if row, cerr = b.rt.Create(ctx, "models.Plain", map[string]any{"name": "concurrent"}, caller); cerr == nil {
			got, cerr = b.rt.Get(ctx, "models.Plain", row["id"].(int64))
		}
	}()
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("a create and a get waited for the import's event to be sent")
	}
	require.NoError(t, cerr)
	require.Equal(t, "concurrent", got["name"])
	close(release)
	require.NoError(t, <-done)
	require.Equal(t, int64(3), b.count(t, "models.Plain"))
}

func testConcurrentUpdates(t *testing.T, open opener) {
	b := setup(t, open, nil)
	ctx := within(t)
	row, err := b.rt.Create(ctx, "models.Plain", map[string]any{"name": "n0", "n": 0}, caller)
	require.NoError(t, err)
	id := row["id"].(int64)
	const rounds = 15
	var wg sync.WaitGroup
	errs := make(chan error, 2*rounds)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 1; i <= rounds; i++ {
			_, err := b.rt.Update(ctx, "models.Plain", id, map[string]any{"name": fmt.Sprintf("n%d", i)}, caller)
			errs <- err
		}
	}()
	go func() {
		defer wg.Done()
		for i := 1; i <= rounds; i++ {
			_, err := b.rt.Update(ctx, "models.Plain", id, map[string]any{"n": i}, caller)
			errs <- err
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	got, err := b.rt.Get(ctx, "models.Plain", id)
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("n%d", rounds), got["name"], "updates of one field do not undo the other's")
	require.Equal(t, int64(rounds), got["n"])
}

func testStoreClosed(t *testing.T, open opener) {
	b := setup(t, open, nil)
	ctx := within(t)
	row, err := b.rt.Create(ctx, "models.Plain", map[string]any{"name": "x"}, caller)
	require.NoError(t, err)
	b.take()
	require.NoError(t, b.store.Close())
	_, err = b.rt.Get(ctx, "models.Plain", row["id"].(int64))
	requireCode(t, err, modelrt.CodeUnavailable, models.ErrUnavailable)
	_, err = b.rt.Create(ctx, "models.Plain", map[string]any{"name": "y"}, caller)
	requireCode(t, err, modelrt.CodeUnavailable, models.ErrUnavailable)
	_, err = b.rt.Query(ctx, "models.Plain", models.Query{})
	requireCode(t, err, modelrt.CodeUnavailable, models.ErrUnavailable)
	events, dates, _ := b.take()
	require.Empty(t, events, "nothing written, nothing announced")
	require.Empty(t, dates)
}
