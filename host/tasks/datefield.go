package tasks

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/trellis-run/trellis/host/vocab"

	"github.com/trellis-run/trellis/host/timers"
)

// notifyWithin: a task due sooner than this wakes the runner at once; a later one is found by
// the runner's next look at the store (it looks at least every second), so a bulk import of
// rows with future dates does not make the runner look once per row.
const notifyWithin = 5 * time.Second

// dateFieldKey names the one pending task a dateField template keeps for a row.
func dateFieldKey(template string, rowID any) string {
	return fmt.Sprintf("%s:%v", template, rowID)
}

// dateFieldTemplates are the enabled dateField templates of model, by fullName.
func (c *Center) dateFieldTemplates(model string) []*Template {
	var out []*Template
	for _, t := range c.Templates() {
		if t.Enabled && t.RepeatType == RepeatDateField && t.DateField != nil && t.DateField.Model == model {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].FullName < out[j].FullName })
	return out
}

// SyncDateFields keeps the date-field tasks of one row of model in step after a write: post is
// the row after it (nil: deleted), prev before (nil: created). With force false (a model write),
// a template whose field did not change is left alone; with force (saveDateFieldTask) the task
// is written anew either way, which ends in the same state. A date already past (after the
// offset) gets no task: the moment it marks is gone.
func (c *Center) SyncDateFields(ctx context.Context, model string, prev, post map[string]any, force bool) (scheduled, removed []string, err error) {
	scheduled, removed = []string{}, []string{}
	row := post
	if row == nil {
		row = prev
	}
	if row == nil {
		return scheduled, removed, nil
	}
	id, ok := row["id"]
	if !ok || id == nil {
		return scheduled, removed, fail(ErrInvalidArgument, "the row has no id: pass the row as stored (with its id)")
	}
	var errs []error
	soon := false
	for _, t := range c.dateFieldTemplates(model) {
		key := dateFieldKey(t.FullName, id)
		var value any
		if post != nil {
			value = post[t.DateField.Field]
		}
		if !force && prev != nil && post != nil && fmt.Sprint(prev[t.DateField.Field]) == fmt.Sprint(value) {
			continue
		}
		at, has, perr := c.rowTime(value)
		if perr != nil {
			errs = append(errs, fmt.Errorf("%s: field %s: %w", t.FullName, t.DateField.Field, perr))
			continue
		}
		if has {
			at = at.Add(t.DateField.Offset)
		}
		if !has || at.Before(time.Now()) {
			ids, rerr := c.opts.Store.RemoveKey(ctx, key)
			removed = append(removed, ids...)
			errs = append(errs, rerr)
			continue
		}
		tid := timers.NewID()
		task := taskFor(t, tid, at, map[string]any{"rowId": id, "row": post})
		task.Key = key
		if oerr := c.openNode(ctx, task.RequestID, task.NodeID); oerr != nil {
			errs = append(errs, oerr)
			continue
		}
		created, replaced, cerr := c.opts.Store.Create(ctx, task)
		if cerr != nil {
			c.forget(ctx, task.RequestID, task.NodeID)
			errs = append(errs, cerr)
			continue
		}
		scheduled = append(scheduled, created.ID)
		removed = append(removed, replaced...)
		soon = soon || time.Until(at) < notifyWithin
	}
	if err := errors.Join(errs...); err != nil {
		return scheduled, removed, fmt.Errorf("tasks: date-field tasks of %s row %v: %w", model, id, err)
	}
	if soon {
		c.notify()
	}
	return scheduled, removed, nil
}

// rowTime reads a Date or Datetime value of a row; has is false for an empty one.
func (c *Center) rowTime(v any) (time.Time, bool, error) {
	if v == nil {
		return time.Time{}, false, nil
	}
	if s, ok := v.(string); ok && strings.TrimSpace(s) == "" {
		return time.Time{}, false, nil
	}
	t, err := vocab.ParseDatetime(v, c.opts.Location())
	if err != nil {
		return time.Time{}, false, err
	}
	return t, true, nil
}

// SaveDateFieldTask is TaskSvc.saveDateFieldTask(rowObj): rowObj is {postData, prevData} and
// names its model in "model" unless a model's own code makes the call. Idempotent.
func (c *Center) SaveDateFieldTask(ctx context.Context, rowObj any, caller Caller) (map[string]any, error) {
	obj, model, err := c.rowObj(rowObj, caller)
	if err != nil {
		return nil, err
	}
	post, ok := obj["postData"].(map[string]any)
	if !ok {
		return nil, fail(ErrInvalidArgument, "rowObj.postData must be the saved row (an object), got %s", vocab.Describe(obj["postData"]))
	}
	prev, _ := obj["prevData"].(map[string]any)
	scheduled, removed, err := c.SyncDateFields(ctx, model, prev, post, true)
	if err != nil {
		return nil, err
	}
	return map[string]any{"scheduled": strs(scheduled), "removed": strs(removed)}, nil
}

// DeleteDateFieldTask is TaskSvc.deleteDateFieldTask(rowObj): rowObj is {prevData}. Idempotent.
func (c *Center) DeleteDateFieldTask(ctx context.Context, rowObj any, caller Caller) (map[string]any, error) {
	obj, model, err := c.rowObj(rowObj, caller)
	if err != nil {
		return nil, err
	}
	prev, ok := obj["prevData"].(map[string]any)
	if !ok {
		return nil, fail(ErrInvalidArgument, "rowObj.prevData must be the deleted row (an object), got %s", vocab.Describe(obj["prevData"]))
	}
	_, removed, err := c.SyncDateFields(ctx, model, prev, nil, true)
	if err != nil {
		return nil, err
	}
	return map[string]any{"removed": strs(removed)}, nil
}

// rowObj reads a rowObj argument and finds its model: rowObj.model, else the model whose code
// is calling (its lifecycle functions run as "<model>@lifecycle").
func (c *Center) rowObj(v any, caller Caller) (map[string]any, string, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, "", fail(ErrInvalidArgument, "rowObj must be an object {postData, prevData}, got %s", vocab.Describe(v))
	}
	model, _ := obj["model"].(string)
	if model == "" {
		model, _, _ = strings.Cut(caller.Element, "@")
	}
	s := c.opts.Snapshot()
	if model == "" || s.Elements[model] == nil || !s.IsA(model, "models.Meta") {
		return nil, "", fail(ErrInvalidArgument, "rowObj does not say which model the row belongs to: add model: \"models.X\" (or call from that model's own code)")
	}
	return obj, model, nil
}

func strs(ids []string) []any {
	out := make([]any, len(ids))
	for i, s := range ids {
		out[i] = s
	}
	return out
}

// taskFor is a task of template t with its own request; its node is the task itself.
func taskFor(t *Template, id string, at time.Time, args map[string]any) timers.Task {
	return timers.Task{ID: id, FullName: t.FullName, FuncName: t.FuncName, TaskType: t.TaskType, ArgDict: args,
		StartTime: at, RequestID: vocab.NewID("req_"), NodeID: id}
}
