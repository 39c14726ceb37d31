package tasks

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/trellis-run/trellis/host/vocab"

	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/timers"
	"github.com/trellis-run/trellis/logstore"
)

// Caller is who asks: the element whose code made the call and its request, so a task created
// from a handler joins the handler's request.
type Caller struct{ Element, RequestID, NodeID string }

// CreateRequest is createTimerTask's arguments as JS or HTTP gave them; the center checks each.
type CreateRequest struct {
	FullName, FuncName, TaskType any
	StartTime                    any
	ArgDict                      any
	Caller                       Caller
}

// Start times further out than this are refused as absurd (a typo in the year, milliseconds
// given as seconds...).
const maxAhead = 100 * 365 * 24 * time.Hour

var earliest = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// CreateTimerTask makes a one-shot task of template fullName calling funcName at startTime (a
// start time already past fires at once). It answers the task record.
func (c *Center) CreateTimerTask(ctx context.Context, req CreateRequest) (map[string]any, error) {
	fullName, err := needString("fullName", req.FullName, "the task template, such as tasks.DataBackup")
	if err != nil {
		return nil, err
	}
	tmpl := c.Templates()[fullName]
	if tmpl == nil {
		return nil, fail(ErrNotFound, "no task template %s; getTaskTmplList lists them", fullName)
	}
	taskType, err := needString("taskType", req.TaskType, "the template's type, such as tasks.NormalType")
	if err != nil {
		return nil, err
	}
	if snap := c.opts.Snapshot(); taskType != tmpl.TaskType && !snap.IsA(fullName, taskType) {
		return nil, fail(ErrInvalidArgument, "taskType %q does not fit template %s, whose type is %s", taskType, fullName, tmpl.TaskType)
	}
	funcName, err := needString("funcName", req.FuncName, "services.X.fn or a function the template exports")
	if err != nil {
		return nil, err
	}
	if err := c.checkFunc(fullName, funcName); err != nil {
		return nil, err
	}
	start, err := c.startTime(req.StartTime)
	if err != nil {
		return nil, err
	}
	args, ok := req.ArgDict.(map[string]any)
	if !ok {
		return nil, fail(ErrInvalidArgument, "argDict must be an object, got %s", vocab.Describe(req.ArgDict))
	}
	id := timers.NewID()
	t := timers.Task{ID: id, FullName: fullName, FuncName: funcName, TaskType: taskType, ArgDict: args, StartTime: start,
		RequestID: req.Caller.RequestID, NodeID: id}
	if t.RequestID == "" {
		t.RequestID = vocab.NewID("req_")
	}
	if err := c.openNode(ctx, t.RequestID, t.NodeID); err != nil {
		return nil, err
	}
	created, _, err := c.opts.Store.Create(ctx, t)
	if err != nil {
		c.forget(ctx, t.RequestID, t.NodeID)
		return nil, fmt.Errorf("tasks: create timer task: %w", err)
	}
	row := c.row(created, logstore.StatusWaiting, logstore.StageScheduled, created.CreatedAt)
	if created.Status != timers.StatusWaiting {
		// Made in a paused request (it waits paused) or a revoked one (it ended at once).
		row = c.stateRow(created, created.CreatedAt)
	}
	row.ParentNodeID = req.Caller.NodeID
	c.writeRows(row)
	if created.Status == timers.StatusFail {
		c.closeNode(ctx, created.RequestID, created.NodeID)
	}
	c.notify()
	return c.Present(created), nil
}

func (c *Center) notify() {
	c.mu.Lock()
	r := c.runner
	c.mu.Unlock()
	if r != nil {
		r.Notify()
	}
}

// checkFunc checks that funcName names a function that exists now: a service's, or one the
// template itself exports.
func (c *Center) checkFunc(fullName, funcName string) error {
	s := c.opts.Snapshot()
	tg := target(fullName, funcName)
	el := s.Elements[tg.Element]
	switch {
	case el == nil:
		return fail(ErrNotFound, "funcName %q: no element %s", funcName, tg.Element)
	case tg.Element != fullName && !s.IsA(tg.Element, registry.MetaServices):
		return fail(ErrInvalidArgument, "funcName %q: %s is not a service; name a service function (services.X.fn) or a function %s exports", funcName, tg.Element, fullName)
	case el.Native:
		for _, f := range el.Functions() {
			if f == tg.Function {
				return nil
			}
		}
	case el.HasExport(tg.Function):
		return nil
	}
	return fail(ErrNotFound, "funcName %q: %s has no function %s", funcName, tg.Element, tg.Function)
}

func (c *Center) startTime(v any) (time.Time, error) {
	if v == nil {
		return time.Time{}, fail(ErrInvalidArgument, "startTime is required: \"YYYY-MM-DD HH:mm:ss\" (app timezone), ISO-8601, epoch milliseconds or a Date")
	}
	t, err := vocab.ParseDatetime(v, c.opts.Location())
	if err != nil {
		return time.Time{}, fail(ErrInvalidArgument, "startTime: %v", err)
	}
	if t.Before(earliest) || t.After(time.Now().Add(maxAhead)) {
		return time.Time{}, fail(ErrInvalidArgument, "startTime %s is out of range: give a time between 2000 and 100 years from now",
			vocab.FormatDatetime(t, c.opts.Location()))
	}
	return t, nil
}

func needString(name string, v any, what string) (string, error) {
	s, ok := v.(string)
	if !ok || strings.TrimSpace(s) == "" {
		return "", fail(ErrInvalidArgument, "%s must be a non-empty string: %s; got %s", name, what, vocab.Describe(v))
	}
	return s, nil
}

// ForcedEnd ends a task: a waiting one never runs; a running one is interrupted on whichever
// host runs it. It answers {taskId, status}.
func (c *Center) ForcedEnd(ctx context.Context, id string) (map[string]any, error) {
	if strings.TrimSpace(id) == "" {
		return nil, fail(ErrInvalidArgument, "taskId is empty")
	}
	t, err := c.opts.Store.ForcedEnd(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("tasks: forcedEnd %s: %w", id, err)
	}
	now := time.Now()
	r := c.row(t, logstore.StatusFail, logstore.StageForcedEnd, now)
	r.EndTime = now
	r.Error = &logstore.RowError{Code: logstore.StageForcedEnd, Message: "the task was force-ended"}
	c.writeRows(r)
	c.closeNode(ctx, t.RequestID, t.NodeID)
	return map[string]any{"taskId": t.ID, "status": t.Status}, nil
}

// GetTask answers a task record.
func (c *Center) GetTask(ctx context.Context, id string) (map[string]any, error) {
	if strings.TrimSpace(id) == "" {
		return nil, fail(ErrInvalidArgument, "taskId is empty")
	}
	t, err := c.opts.Store.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("tasks: get %s: %w", id, err)
	}
	return c.Present(t), nil
}

// ListTasks answers task records, newest first: {totalCount, rowDatas}.
func (c *Center) ListTasks(ctx context.Context, q timers.ListQuery) (map[string]any, error) {
	rows, total, err := c.opts.Store.List(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("tasks: list: %w", err)
	}
	out := make([]any, len(rows))
	for i, t := range rows {
		out[i] = c.Present(t)
	}
	return map[string]any{"totalCount": total, "rowDatas": out}, nil
}

// Present is a task record as JS and HTTP see it (docs/reference.md §4): datetimes in the app timezone.
func (c *Center) Present(t timers.Task) map[string]any {
	loc := c.opts.Location()
	at := func(v time.Time) any {
		if v.IsZero() {
			return nil
		}
		return vocab.FormatDatetime(v, loc)
	}
	var terr any
	if t.Error != nil {
		terr = map[string]any{"code": t.Error.Code, "message": t.Error.Message, "stack": t.Error.Stack}
	}
	args := t.ArgDict
	if args == nil {
		args = map[string]any{}
	}
	return map[string]any{
		"taskId": t.ID, "fullName": t.FullName, "funcName": t.FuncName, "taskType": t.TaskType, "argDict": args,
		"startTime": at(t.StartTime), "status": t.Status, "result": t.Result, "error": terr,
		"requestId": t.RequestID, "nodeId": t.NodeID, "attempt": int64(t.Attempt), "host": t.Owner,
		"createdAt": at(t.CreatedAt), "startedAt": at(t.StartedAt), "endedAt": at(t.EndedAt),
		"firstStartedAt": at(t.FirstStartedAt),
	}
}
