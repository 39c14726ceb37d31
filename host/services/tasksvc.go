package services

import (
	"context"

	"github.com/trellis-run/trellis/host/tasks"
	"github.com/trellis-run/trellis/host/vocab"
)

// TaskSvcName is the fullName of the built-in task service.
const TaskSvcName = "services.TaskSvc"

func registerTaskSvc(c *Catalog) {
	c.Register(TaskSvcName, "getTaskTmplList", getTaskTmplList)
	c.Register(TaskSvcName, "createTimerTask", withTasks(func(ctx context.Context, tc *tasks.Center, inv Invocation) (any, error) {
		return tc.CreateTimerTask(ctx, tasks.CreateRequest{
			FullName: inv.Args["fullName"], StartTime: inv.Args["startTime"], FuncName: inv.Args["funcName"],
			TaskType: inv.Args["taskType"], ArgDict: inv.Args["argDict"], Caller: callerOf(inv),
		})
	}))
	c.Register(TaskSvcName, "forcedEnd", withTasks(func(ctx context.Context, tc *tasks.Center, inv Invocation) (any, error) {
		id, _ := inv.Args["taskId"].(string)
		return tc.ForcedEnd(ctx, id)
	}))
	c.Register(TaskSvcName, "getTask", withTasks(func(ctx context.Context, tc *tasks.Center, inv Invocation) (any, error) {
		id, _ := inv.Args["taskId"].(string)
		return tc.GetTask(ctx, id)
	}))
	c.Register(TaskSvcName, "saveDateFieldTask", withTasks(func(ctx context.Context, tc *tasks.Center, inv Invocation) (any, error) {
		return tc.SaveDateFieldTask(ctx, inv.Args["rowObj"], callerOf(inv))
	}))
	c.Register(TaskSvcName, "deleteDateFieldTask", withTasks(func(ctx context.Context, tc *tasks.Center, inv Invocation) (any, error) {
		return tc.DeleteDateFieldTask(ctx, inv.Args["rowObj"], callerOf(inv))
	}))
}

// withTasks gives a method the task center, or fails with unavailable when it is not running.
func withTasks(fn func(ctx context.Context, tc *tasks.Center, inv Invocation) (any, error)) Method {
	return func(ctx context.Context, env Env, inv Invocation) (any, error) {
		tc := env.Tasks()
		if tc == nil {
			return nil, vocab.Errorf(vocab.CodeUnavailable, "services: the task center is not running on this host")
		}
		return fn(ctx, tc, inv)
	}
}

func callerOf(inv Invocation) tasks.Caller {
	return tasks.Caller{Element: inv.Caller, RequestID: inv.RequestID, NodeID: inv.NodeID}
}

func getTaskTmplList(_ context.Context, env Env, inv Invocation) (any, error) {
	q, _ := inv.Args["queryStr"].(string)
	rows := tasks.TemplateList(env.Snapshot(), q)
	out := make([]any, len(rows))
	for i, r := range rows {
		out[i] = map[string]any{"title": r.Title, "taskType": r.TaskType, "repeatType": r.RepeatType, "fullName": r.FullName}
	}
	return out, nil
}
