package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-run/trellis/host/execlog"
	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/lifecycle"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/requests"
	"github.com/trellis-run/trellis/host/timers"
	"github.com/trellis-run/trellis/host/timers/recurring"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

// Options configure a Center. Store, Executor, Log, Snapshot and Location are required.
type Options struct {
	Store    timers.Store
	Executor jsvm.Executor
	Log      *execlog.Recorder
	Snapshot func() *registry.Snapshot
	Location func() *time.Location
	// Coordinator makes cron and interval ticks run on one host of the cluster; required with
	// Serve.
	Coordinator recurring.Coordinator
	// Owner names this host in task records (default: Log's host label, as in log rows).
	Owner string
	// Serve makes this host run due tasks and template ticks (trellis serve); without it the
	// center only creates and reads tasks (trellis call).
	Serve bool
	// Poll bounds how long a due task created by another host may wait before this one looks
	// (default: the store's hint).
	Poll time.Duration
	// Lease is how long a running task stays with a host that stopped heartbeating (default 30 s).
	Lease time.Duration
	// Signals hears the moments of each task run (lifecycle.Signal: node_enter, node_finish,
	// node_execute_fail, node_execute_exception); nil emits none. Signals are app-wide: they are
	// emitted whether or not the template has needRunHook (docs/hooks.md).
	Signals lifecycle.Emitter
	// Requests tracks each request's unfinished nodes for pipeline_finish (finish.go); nil, or
	// an app with signals off, tracks nothing.
	Requests requests.Tracker
	// Logger hears what the center, its runner and its scheduler recover from on their own;
	// default slog.Default().
	Logger *slog.Logger
}

// Center is the task center of one host. Start and Stop are safe to call twice.
type Center struct {
	opts Options

	mu        sync.Mutex
	started   bool
	runner    *timers.Runner
	scheduler *recurring.Scheduler

	cached atomic.Pointer[templateCache]
}

type templateCache struct {
	snap      *registry.Snapshot
	loc       *time.Location
	templates map[string]*Template
}

// New checks the options; nothing runs before Start.
func New(o Options) (*Center, error) {
	if o.Store == nil || o.Executor == nil || o.Log == nil || o.Snapshot == nil || o.Location == nil {
		return nil, errors.New("tasks: Options.Store, Executor, Log, Snapshot and Location are required")
	}
	if o.Serve && o.Coordinator == nil {
		return nil, errors.New("tasks: Options.Coordinator is required to serve cron and interval templates")
	}
	if o.Owner == "" {
		o.Owner = o.Log.Host()
	}
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Center{opts: o}, nil
}

// Templates returns the task templates of the current app version, computed once per version.
func (c *Center) Templates() map[string]*Template {
	s, loc := c.opts.Snapshot(), c.opts.Location()
	if tc := c.cached.Load(); tc != nil && tc.snap == s && tc.loc == loc {
		return tc.templates
	}
	tc := &templateCache{snap: s, loc: loc, templates: TemplatesOf(s, loc)}
	c.cached.Store(tc)
	return tc.templates
}

// Start runs due tasks and schedules the app's cron and interval templates (with Serve).
func (c *Center) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started || !c.opts.Serve {
		c.started = true
		return nil
	}
	runner, err := timers.NewRunner(timers.RunnerOptions{Store: c.opts.Store, Owner: c.opts.Owner, Fire: c.fire, Lease: c.opts.Lease, Poll: c.opts.Poll,
		Logger: c.opts.Logger})
	if err != nil {
		return err
	}
	if err := runner.Start(ctx); err != nil {
		return fmt.Errorf("tasks: start the timer runner: %w", err)
	}
	sched, err := recurring.New(recurring.Options{Coordinator: c.opts.Coordinator, Fire: c.fireTick, Logger: c.opts.Logger})
	if err == nil {
		err = sched.Start(ctx)
	}
	if err == nil {
		err = sched.Sync(ctx, c.recurringTemplates())
	}
	if err != nil {
		_ = runner.Stop(ctx)
		return fmt.Errorf("tasks: start the cron and interval scheduler: %w", err)
	}
	c.runner, c.scheduler, c.started = runner, sched, true
	return nil
}

// Reload follows a new app version: templates enabled, disabled, added, removed or edited take
// effect at once.
func (c *Center) Reload(ctx context.Context) error {
	c.mu.Lock()
	sched := c.scheduler
	c.mu.Unlock()
	if sched == nil {
		return nil
	}
	return sched.Sync(ctx, c.recurringTemplates())
}

// Stop stops scheduling and waits for runs in flight (within ctx); runs it cuts short stay
// with the store and another host takes them over after the lease.
func (c *Center) Stop(ctx context.Context) error {
	c.mu.Lock()
	runner, sched := c.runner, c.scheduler
	c.runner, c.scheduler, c.started = nil, nil, false
	c.mu.Unlock()
	var errs []error
	if sched != nil {
		errs = append(errs, sched.Stop(ctx))
	}
	if runner != nil {
		errs = append(errs, runner.Stop(ctx))
	}
	return errors.Join(errs...)
}

func (c *Center) recurringTemplates() []recurring.Template {
	var out []recurring.Template
	for _, t := range c.Templates() {
		if !t.Enabled || (t.RepeatType != RepeatCron && t.RepeatType != RepeatInterval) {
			continue
		}
		out = append(out, recurring.Template{FullName: t.FullName, Cron: t.Cron, Interval: t.Interval, Location: t.Location,
			Misfire: t.Misfire, Concurrency: t.Concurrency, Version: t.Version})
	}
	return out
}

// fireTick runs one tick of a cron or interval template on this host, as a task record.
func (c *Center) fireTick(ctx context.Context, tick recurring.Tick) error {
	tmpl := c.Templates()[tick.Template]
	if tmpl == nil || !tmpl.Enabled {
		return nil // removed or disabled since the tick was scheduled
	}
	args := tmpl.ArgDict
	if args == nil {
		args = map[string]any{}
	}
	t := taskFor(tmpl, timers.NewID(), tick.At, args)
	c.mu.Lock()
	runner := c.runner
	c.mu.Unlock()
	if runner == nil {
		return errors.New("tasks: stopping")
	}
	if err := c.openNode(ctx, t.RequestID, t.NodeID); err != nil {
		return err
	}
	_, err := runner.RunNow(ctx, t)
	return err
}

// fire runs one task to its end: the function named by funcName, called as fn(argDict, ctx). It
// records the running and final states in the log; the runner records them in the task store.
// The template's hooks run around the function and the run's signals are emitted
// (docs/hooks.md): node_enter before it, then node_finish, node_execute_fail or
// node_execute_exception; the hooks' rows are written with the run's final row.
func (c *Center) fire(ctx context.Context, t timers.Task) (any, error) {
	start := time.Now()
	c.writeRows(c.row(t, logstore.StatusRunning, logstore.StageRunning, start))
	tg := target(t.FullName, t.FuncName)
	var timeout time.Duration
	tmpl := c.Templates()[t.FullName]
	if tmpl != nil {
		timeout = tmpl.Timeout
	}
	args := t.ArgDict
	if args == nil {
		args = map[string]any{}
	}
	// hook runs hook h of the template with data. A hook that fails has a row of its own, written
	// with the run's; one that succeeds has none: what it printed joins the run's row (before the
	// function's output for node_enter, after it for the others).
	var hookRows []logstore.Row
	var logsBefore, logsAfter []jsvm.LogEntry
	hook := func(h lifecycle.Type, data map[string]any) map[string]any {
		out, r, logs, _ := c.callHook(ctx, tmpl, t, h, data, false)
		if r.ID != "" {
			hookRows = append(hookRows, r)
		}
		if h == lifecycle.NodeEnter {
			logsBefore = append(logsBefore, logs...)
		} else {
			logsAfter = append(logsAfter, logs...)
		}
		return out
	}
	var res jsvm.Result
	withHookLogs := func(r *logstore.Row) {
		if len(logsBefore)+len(logsAfter) > 0 {
			all := append(append(append([]jsvm.LogEntry{}, logsBefore...), res.Logs...), logsAfter...)
			r.Logs, _ = json.Marshal(all)
		}
	}
	var callArgs any = args
	if tmpl != nil && tmpl.Hooks.Has(lifecycle.NodeEnter) {
		// node_enter may change data.argDict: the function receives what it left (the task
		// record keeps the argDict it was created with).
		callArgs = hook(lifecycle.NodeEnter, taskData(t))["argDict"]
	}
	c.signal(ctx, lifecycle.NodeEnter, t, map[string]any{"ex_data": ""})
	res, err := c.opts.Executor.Execute(ctx, jsvm.Call{
		Element: tg.Element, Function: tg.Function, Args: []any{callArgs},
		Limits: jsvm.Limits{Timeout: timeout}, RequestID: t.RequestID, NodeID: t.NodeID,
		Ctx: &jsvm.HandlerContext{Attempt: t.Attempt, Extra: map[string]any{"taskId": t.ID}},
	})
	end := time.Now()
	if ctx.Err() != nil {
		// Force-ended (ForcedEnd recorded that) or the host is stopping (another host takes the
		// task over): either way this run's outcome is not the task's.
		c.writeRows(hookRows...)
		return nil, ctx.Err()
	}
	r := c.row(t, logstore.StatusSuccess, logstore.StageDone, end)
	re := execlog.Finish(&r, start, end, res, err)
	ignored := err == nil && res.Failed != nil && tmpl != nil && tmpl.IgnoreFailure
	if re != nil && !ignored {
		// ctx.fail is a failure (node_execute_fail), a throw or a timeout an exception
		// (node_execute_exception); either hook may change data.error.message.
		moment, sig := lifecycle.NodeExecuteException, map[string]any{"ex_data": re.Message}
		if err == nil {
			moment, sig = lifecycle.NodeExecuteFail, nil
		}
		if tmpl != nil && tmpl.Hooks.Has(moment) {
			data := taskData(t)
			data["error"] = errorData(re)
			if m, ok := hook(moment, data)["error"].(map[string]any); ok {
				if msg, ok := m["message"].(string); ok {
					re.Message = msg
				}
			}
		}
		c.signal(ctx, moment, t, sig)
		failed := &runError{timers.TaskError{Code: re.Code, Message: re.Message, Stack: re.Stack}}
		if at, ok := c.retryAt(t, start, end); ok {
			// The runner sends the task back to waiting until at (Store.Retry): any host runs
			// it then, as the next attempt of the same node.
			r.Status, r.Stage = logstore.StatusWaiting, logstore.StageRetryScheduled
			withHookLogs(&r)
			c.writeRows(append(hookRows, r)...)
			return nil, &timers.RetryError{At: at, Err: failed, Retried: c.retried}
		}
		r.Status, r.Stage = logstore.StatusFail, logstore.StageFailed
		withHookLogs(&r)
		c.writeRows(append(hookRows, r)...)
		c.closeNode(ctx, t.RequestID, t.NodeID)
		return nil, failed
	}
	// The run ended well (with ignoreFailure, a ctx.fail counts as that: the log row keeps the
	// reason as its error). node_finish may change data.result: it is what is saved.
	value := res.Value
	if tmpl != nil && tmpl.Hooks.Has(lifecycle.NodeFinish) {
		data := taskData(t)
		data["result"], data["error"] = value, errorData(re)
		if out := hook(lifecycle.NodeFinish, data); !ignored {
			value = out["result"]
			if b, merr := vocab.EncodeJSON(value); merr == nil {
				r.Result = b
			}
		}
	}
	c.signal(ctx, lifecycle.NodeFinish, t, nil)
	withHookLogs(&r)
	c.writeRows(append(hookRows, r)...)
	c.closeNode(ctx, t.RequestID, t.NodeID)
	if ignored {
		return nil, nil
	}
	return value, nil
}

// retryAt says whether t's run that started at start and failed at end is tried again by its
// template's retry policy (as the template is now), and when. Attempts count every run of the
// task, a run taken over from a dead host included; a cyclic window counts from the first run.
// A task whose template is gone is not retried.
func (c *Center) retryAt(t timers.Task, start, end time.Time) (time.Time, bool) {
	tmpl := c.Templates()[t.FullName]
	if tmpl == nil {
		return time.Time{}, false
	}
	first := t.FirstStartedAt
	if first.IsZero() {
		first = start
	}
	d, ok := tmpl.Retry.Next(t.Attempt, first, end)
	if !ok {
		return time.Time{}, false
	}
	return end.Add(d), true
}

// retried records a retry the task store did not send back to waiting: in a paused request it
// waits paused, in a revoked one it ended (timers.Store.OperateRequest).
func (c *Center) retried(t timers.Task) {
	if t.Status == timers.StatusWaiting {
		return
	}
	c.writeRows(c.stateRow(t, time.Now()))
	if t.Status == timers.StatusFail {
		c.closeNode(context.Background(), t.RequestID, t.NodeID)
	}
}

// runError gives the task record the JS error's fields.
type runError struct{ te timers.TaskError }

func (e *runError) Error() string                { return e.te.Code + ": " + e.te.Message }
func (e *runError) TaskError() *timers.TaskError { return &e.te }

// row is one log row of a task's node: the node is the task (NodeID = task id unless the
// creator gave one), created when the task was.
func (c *Center) row(t timers.Task, status, stage string, at time.Time) logstore.Row {
	created := t.CreatedAt
	if created.IsZero() {
		created = at
	}
	if at.Before(created) {
		at = created
	}
	kwargs, _ := json.Marshal(t.ArgDict)
	return c.opts.Log.Row(execlog.Node{Kind: logstore.KindTask, FullName: t.FullName, RequestID: t.RequestID,
		NodeID: t.NodeID, Attempt: t.Attempt, CreatedAt: created, Kwargs: kwargs}, status, stage, at)
}

func (c *Center) writeRows(rows ...logstore.Row) { c.opts.Log.Write(context.Background(), rows...) }
