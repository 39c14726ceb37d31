package tasks_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/tasks"
	"github.com/trellis-run/trellis/host/timers"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

// row is a copy of r with the fields of set changed (a nil value clears the field to null).
func row(r map[string]any, set map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range r {
		out[k] = v
	}
	for k, v := range set {
		out[k] = v
	}
	return out
}

// TestSyncDateFields follows one row of models.Order through its life: each enabled dateField
// template of the model keeps one waiting task per row at row[field] + offset — created,
// left alone while the field does not change, moved, removed when the field is cleared or its
// moment has passed, and removed with the row; every step can be repeated.
func TestSyncDateFields(t *testing.T) {
	t.Parallel()
	b := setup(t, taskApp, func(o *tasks.Options) { o.Serve = false })
	ctx := b.ctx
	format := func(at time.Time) string { return vocab.FormatDatetime(at, b.loc) }
	due := time.Now().Add(3 * time.Hour).Truncate(time.Second)
	sync := func(prev, post map[string]any, force bool) (scheduled, removed []string) {
		t.Helper()
		s, r, err := b.center.SyncDateFields(ctx, "models.Order", prev, post, force)
		require.NoError(t, err)
		return s, r
	}
	waiting := func() []map[string]any {
		t.Helper()
		_, rows := b.listTasks(timers.ListQuery{Status: timers.StatusWaiting, PageSize: timers.MaxPageSize})
		return rows
	}
	gone := func(id string) {
		t.Helper()
		_, err := b.center.GetTask(ctx, id)
		require.Equal(t, vocab.CodeNotFound, vocab.CodeOf(err), "task %s was replaced, not kept: %v", id, err)
	}

	// Created: Remind (dueAt - 1h) is scheduled; Ship has no date; the disabled template does nothing.
	v1 := map[string]any{"id": big, "dueAt": format(due), "shipOn": ""}
	scheduled, removed := sync(nil, v1, false)
	require.Len(t, scheduled, 1)
	require.Empty(t, removed)
	first := scheduled[0]
	rec, err := b.center.GetTask(ctx, first)
	require.NoError(t, err)
	require.Equal(t, "tasks.Remind", rec["fullName"])
	require.Equal(t, "remind", rec["funcName"])
	require.Equal(t, format(due.Add(-time.Hour)), rec["startTime"], "the field's time plus the template's offset")
	require.Equal(t, map[string]any{"rowId": big, "row": v1}, rec["argDict"], "the function gets the row and its id, exactly")
	require.Len(t, waiting(), 1)

	// The same write again: the field did not change, nothing happens.
	scheduled, removed = sync(v1, v1, false)
	require.Empty(t, scheduled)
	require.Empty(t, removed)

	// Forced (saveDateFieldTask): the task is written anew, replacing the old one; still one.
	scheduled, removed = sync(v1, v1, true)
	require.Len(t, scheduled, 1)
	require.Equal(t, []string{first}, removed)
	second := scheduled[0]
	gone(first)
	require.Len(t, waiting(), 1)

	// Moved.
	v2 := row(v1, map[string]any{"dueAt": format(due.Add(2 * time.Hour))})
	scheduled, removed = sync(v1, v2, false)
	require.Len(t, scheduled, 1)
	require.Equal(t, []string{second}, removed)
	third := scheduled[0]
	rec, err = b.center.GetTask(ctx, third)
	require.NoError(t, err)
	require.Equal(t, format(due.Add(time.Hour)), rec["startTime"])

	// Another field gets a date: its template schedules; Remind, unchanged, is left alone.
	tomorrow := time.Now().In(b.loc).AddDate(0, 0, 1).Format("2006-01-02")
	v3 := row(v2, map[string]any{"shipOn": tomorrow})
	scheduled, removed = sync(v2, v3, false)
	require.Len(t, scheduled, 1)
	require.Empty(t, removed)
	ship := scheduled[0]
	rec, err = b.center.GetTask(ctx, ship)
	require.NoError(t, err)
	require.Equal(t, "tasks.Ship", rec["fullName"])
	require.Equal(t, tomorrow+" 00:00:00", rec["startTime"], "a Date is midnight in the app timezone")
	require.Len(t, waiting(), 2)

	// Cleared.
	v4 := row(v3, map[string]any{"dueAt": nil})
	scheduled, removed = sync(v3, v4, false)
	require.Empty(t, scheduled)
	require.Equal(t, []string{third}, removed)

	// A date whose moment (after the offset) has passed gets no task.
	v5 := row(v4, map[string]any{"dueAt": format(time.Now().Add(30 * time.Minute))})
	scheduled, removed = sync(v4, v5, false)
	require.Empty(t, scheduled)
	require.Empty(t, removed)
	require.Len(t, waiting(), 1)

	// Deleted, twice.
	scheduled, removed = sync(v5, nil, false)
	require.Empty(t, scheduled)
	require.Equal(t, []string{ship}, removed)
	scheduled, removed = sync(v5, nil, false)
	require.Empty(t, scheduled)
	require.Empty(t, removed, "deleting is idempotent")
	require.Empty(t, waiting())

	// Neither row: nothing to do.
	scheduled, removed = sync(nil, nil, false)
	require.Equal(t, []string{}, scheduled)
	require.Equal(t, []string{}, removed)
}

func TestSyncDateFieldsRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t, taskApp, func(o *tasks.Options) { o.Serve = false })
	later := vocab.FormatDatetime(time.Now().Add(5*time.Hour), b.loc)
	cases := []struct {
		name       string
		prev, post map[string]any
		msg        string
	}{
		{"no id", nil, map[string]any{"dueAt": later}, "the row has no id: pass the row as stored (with its id)"},
		{"a null id", nil, map[string]any{"id": nil, "dueAt": later}, "the row has no id"},
		{"a date that is none", nil, map[string]any{"id": int64(1), "dueAt": "the day after tomorrow"}, "tasks.Remind: field dueAt:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := b.center.SyncDateFields(b.ctx, "models.Order", tc.prev, tc.post, false)
			require.Equal(t, vocab.CodeInvalidArgument, vocab.CodeOf(err), "%v", err)
			require.ErrorContains(t, err, tc.msg)
		})
	}
}

// TestSaveAndDeleteDateFieldTask: TaskSvc's rowObj forms; the model comes from rowObj.model or
// from the model whose own code calls.
func TestSaveAndDeleteDateFieldTask(t *testing.T) {
	t.Parallel()
	b := setup(t, taskApp, func(o *tasks.Options) { o.Serve = false })
	later := vocab.FormatDatetime(time.Now().Add(5*time.Hour), b.loc)
	post := map[string]any{"id": int64(7), "dueAt": later}
	lifecycle := tasks.Caller{Element: "models.Order@lifecycle"}

	saved, err := b.center.SaveDateFieldTask(b.ctx, map[string]any{"postData": post}, lifecycle)
	require.NoError(t, err)
	scheduled := saved["scheduled"].([]any)
	require.Len(t, scheduled, 1)
	require.Equal(t, []any{}, saved["removed"])
	again, err := b.center.SaveDateFieldTask(b.ctx, map[string]any{"model": "models.Order", "postData": post, "prevData": post}, tasks.Caller{})
	require.NoError(t, err)
	require.Equal(t, scheduled, again["removed"], "saving again replaces the task: one per row and template")
	deleted, err := b.center.DeleteDateFieldTask(b.ctx, map[string]any{"model": "models.Order", "prevData": post}, tasks.Caller{})
	require.NoError(t, err)
	require.Equal(t, map[string]any{"removed": again["scheduled"]}, deleted)
	deleted, err = b.center.DeleteDateFieldTask(b.ctx, map[string]any{"prevData": post}, lifecycle)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"removed": []any{}}, deleted)

	cases := []struct {
		name   string
		delete bool
		rowObj any
		caller tasks.Caller
		msg    string
	}{
		{"not an object", false, "row", tasks.Caller{}, "rowObj must be an object {postData, prevData}, got"},
		{"no model", false, map[string]any{"postData": post}, tasks.Caller{Element: "services.Echo"}, "rowObj does not say which model the row belongs to"},
		{"not a model", false, map[string]any{"model": "services.Echo", "postData": post}, tasks.Caller{}, "does not say which model"},
		{"an unknown model", false, map[string]any{"model": "models.Nope", "postData": post}, tasks.Caller{}, "does not say which model"},
		{"no postData", false, map[string]any{"model": "models.Order"}, tasks.Caller{}, "rowObj.postData must be the saved row (an object), got"},
		{"no prevData", true, map[string]any{"model": "models.Order", "postData": post}, tasks.Caller{}, "rowObj.prevData must be the deleted row (an object), got"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var err error
			if tc.delete {
				_, err = b.center.DeleteDateFieldTask(b.ctx, tc.rowObj, tc.caller)
			} else {
				_, err = b.center.SaveDateFieldTask(b.ctx, tc.rowObj, tc.caller)
			}
			require.Equal(t, vocab.CodeInvalidArgument, vocab.CodeOf(err), "%v", err)
			require.ErrorContains(t, err, tc.msg)
		})
	}
}

// TestDateFieldTaskFires: a date-field task due soon runs at its time with the row.
func TestDateFieldTaskFires(t *testing.T) {
	t.Parallel()
	b := setup(t, taskApp)
	due := time.Now().Add(time.Hour + 300*time.Millisecond) // Remind fires an hour before
	scheduled, _, err := b.center.SyncDateFields(b.ctx, "models.Order", nil, map[string]any{"id": big, "dueAt": due}, false)
	require.NoError(t, err)
	require.Len(t, scheduled, 1)
	b.probe.AwaitHit(t, "remind:9007199254740993")
	rows := b.awaitStage(scheduled[0], logstore.StageDone)
	require.GreaterOrEqual(t, len(rows), 2)
	rows = rows[len(rows)-2:]
	require.Equal(t, []string{"running/running", "success/done"}, stages(rows))
	require.Equal(t, "9007199254740993", string(rows[1].Result))
	dueJSON, err := json.Marshal(due)
	require.NoError(t, err)
	require.JSONEq(t, `{"rowId": 9007199254740993, "row": {"id": 9007199254740993, "dueAt": `+string(dueJSON)+`}}`, string(rows[1].Kwargs))
	rec := b.awaitStatus(scheduled[0], timers.StatusSuccess)
	require.Equal(t, big, rec["result"])
}
