package tasks

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/trellis-run/trellis/host/vocab"
)

// TemplateState is a template as the task console shows it (GET /api/tasks/templates):
// getTaskTmplList's row with what the template does, whether it is enabled, its schedule and,
// for an enabled cron or interval template the scheduler holds, when it ticks next.
type TemplateState struct {
	TemplateInfo
	FuncName string `json:"funcName"`
	Enabled  bool   `json:"enabled"`
	// Schedule says when the template runs, in words: "cron 0 9 * * * (Europe/Paris)",
	// "every 10m", "30m before models.Order.dueAt"; "" for a once template (it runs when a timer
	// task of it is created).
	Schedule string `json:"schedule,omitempty"`
	// NextFireTime is the next tick in the app's datetime form; "" when none is scheduled
	// (disabled, once or dateField, or this host does not serve ticks).
	NextFireTime string `json:"nextFireTime,omitempty"`
}

// TemplateStates lists the task templates matching query as TemplateList does, with their
// states.
func (c *Center) TemplateStates(query string) []TemplateState {
	infos := TemplateList(c.opts.Snapshot(), query)
	tmpls := c.Templates()
	c.mu.Lock()
	sched := c.scheduler
	c.mu.Unlock()
	loc := c.opts.Location()
	out := make([]TemplateState, 0, len(infos))
	for _, info := range infos {
		st := TemplateState{TemplateInfo: info}
		if t := tmpls[info.FullName]; t != nil {
			st.FuncName, st.Enabled, st.Schedule = t.FuncName, t.Enabled, t.schedule()
			if sched != nil && t.Enabled {
				if at, ok := sched.Next(t.FullName); ok {
					st.NextFireTime = vocab.FormatDatetime(at, loc)
				}
			}
		}
		out = append(out, st)
	}
	return out
}

// schedule is Schedule's words for t.
func (t *Template) schedule() string {
	switch t.RepeatType {
	case RepeatCron:
		return fmt.Sprintf("cron %s (%s)", t.Cron, t.Location)
	case RepeatInterval:
		return "every " + shortDuration(t.Interval)
	case RepeatDateField:
		if t.DateField == nil {
			return ""
		}
		at := t.DateField.Model + "." + t.DateField.Field
		switch off := t.DateField.Offset; {
		case off < 0:
			return fmt.Sprintf("%s before %s", shortDuration(-off), at)
		case off > 0:
			return fmt.Sprintf("%s after %s", shortDuration(off), at)
		default:
			return "at " + at
		}
	}
	return ""
}

// shortDuration writes d as e.json would: "1h", "30m", "1h30m", not "1h0m0s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// RunTemplateNow makes a timer task of template fullName due now, with the template's funcName
// and argDict (or argDict when it is not nil): the console's "run now". It answers the task
// record, as createTimerTask does.
func (c *Center) RunTemplateNow(ctx context.Context, fullName string, argDict any) (map[string]any, error) {
	t := c.Templates()[fullName]
	if t == nil {
		return nil, fail(ErrNotFound, "no task template %q in this app (GET /api/tasks/templates lists them)", fullName)
	}
	if t.FuncName == "" {
		return nil, fail(ErrInvalidArgument, "task template %q names no funcName to run", fullName)
	}
	if argDict == nil {
		args := map[string]any{}
		for k, v := range t.ArgDict {
			args[k] = v
		}
		argDict = args
	}
	return c.CreateTimerTask(ctx, CreateRequest{FullName: fullName, FuncName: t.FuncName, TaskType: t.TaskType,
		StartTime: time.Now(), ArgDict: argDict})
}
