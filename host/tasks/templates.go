package tasks

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/trellis-run/trellis/host/lifecycle"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/retry"
)

// Repeat types of a template (docs/reference.md §4).
const (
	RepeatOnce      = "once"
	RepeatCron      = "cron"
	RepeatInterval  = "interval"
	RepeatDateField = "dateField"
)

// DefaultRetry is the retry of a template whose retry field says nothing (tasks.Meta's schema
// defaults: policy none, so a failed run is not tried again; interval 5m and maxAttempts 5 for a
// template that only names a policy).
var DefaultRetry = retry.Policy{Policy: retry.None, Interval: 5 * time.Minute, MaxAttempts: 5}

// Template is a task template (a tasks.Meta instance) as the task center needs it. The registry
// has validated the definition (durations, timezone, funcName; cron syntax and intervals through
// ValidateTemplate, which the host passes it) before it gets here.
type Template struct {
	FullName, Title, TaskType, RepeatType string
	Cron                                  string
	Interval                              time.Duration
	// Location is the template's timezone, else the app's.
	Location    *time.Location
	FuncName    string
	ArgDict     map[string]any
	Timeout     time.Duration
	Misfire     string
	Concurrency string
	// Retry is the policy a failed run is tried again by (none unless the template says).
	Retry     retry.Policy
	Enabled   bool
	DateField *DateField
	// IgnoreFailure: a ctx.fail ends the run as success at once, its reason kept as the log
	// row's error (no retry, no node_execute_fail; node_finish runs). Throws are not ignored.
	IgnoreFailure bool
	// Hooks are the hooks the template runs: with needRunHook, those of lifecycle.Hooks its
	// entry exports.
	Hooks lifecycle.Set
	// Version changes whenever the definition does, so a reload reschedules an edited template.
	Version string
}

// DateField is a dateField template's row date: each row of Model gets one pending task at
// row[Field] + Offset.
type DateField struct {
	Model, Field string
	Offset       time.Duration
}

// TemplatesOf returns every task template of s by fullName; appLoc is the app's timezone.
func TemplatesOf(s *registry.Snapshot, appLoc *time.Location) map[string]*Template {
	out := map[string]*Template{}
	for _, el := range s.Sorted() {
		if el.Layer != registry.LayerInstance || !s.IsA(el.FullName, "tasks.Meta") {
			continue
		}
		out[el.FullName] = templateOf(el, appLoc)
	}
	return out
}

func templateOf(el *registry.Element, appLoc *time.Location) *Template {
	d := el.Definition
	t := &Template{
		FullName: el.FullName, Title: el.Title, TaskType: el.Type,
		RepeatType:  strOr(d, "repeatType", RepeatOnce),
		Cron:        str(d, "cron"),
		Interval:    duration(d, "interval"),
		Location:    appLoc,
		FuncName:    str(d, "funcName"),
		Timeout:     duration(d, "timeout"),
		Misfire:     strOr(d, "misfire", "fireOnce"),
		Concurrency: strOr(d, "concurrency", "serial"),
		Enabled:     true,
	}
	t.IgnoreFailure, _ = d["ignoreFailure"].(bool)
	need, _ := d["needRunHook"].(bool)
	t.Hooks = lifecycle.HooksOf(need, el.Exports)
	if e, ok := d["enabled"].(bool); ok {
		t.Enabled = e
	}
	// The registry loads a template only with a retry Parse accepts; were one to slip through,
	// its runs are not retried.
	if p, err := retry.Parse(d["retry"], DefaultRetry); err == nil {
		t.Retry = p
	} else {
		t.Retry = retry.Policy{Policy: retry.None, MaxAttempts: 1}
	}
	if a, ok := d["argDict"].(map[string]any); ok {
		t.ArgDict = a
	}
	if tz := str(d, "timezone"); tz != "" {
		if loc, err := time.LoadLocation(tz); err == nil {
			t.Location = loc
		}
	}
	if df, ok := d["dateField"].(map[string]any); ok {
		t.DateField = &DateField{Model: str(df, "model"), Field: str(df, "field"), Offset: duration(df, "offset")}
	}
	raw, _ := json.Marshal(d)
	sum := sha256.Sum256(append(raw, t.Location.String()...))
	t.Version = hex.EncodeToString(sum[:8])
	return t
}

// Target is the function a task calls: Element's exported Function, as fn(argDict, ctx).
type Target struct{ Element, Function string }

// target resolves funcName: "services.X.fn" is a service function; a plain name is exported by
// the task element itself.
func target(taskElement, funcName string) Target {
	if i := strings.LastIndexByte(funcName, '.'); i >= 0 {
		return Target{Element: funcName[:i], Function: funcName[i+1:]}
	}
	return Target{Element: taskElement, Function: funcName}
}

func str(d map[string]any, k string) string { s, _ := d[k].(string); return s }

func strOr(d map[string]any, k, def string) string {
	if s := str(d, k); s != "" {
		return s
	}
	return def
}

// duration reads a duration field; a leading "-" (date-field offsets) is allowed.
func duration(d map[string]any, k string) time.Duration {
	v, err := time.ParseDuration(str(d, k))
	if err != nil {
		return 0
	}
	return v
}

// TemplateInfo is one row of getTaskTmplList, named as the seed names its fields.
type TemplateInfo struct {
	Title      string `json:"title"`
	TaskType   string `json:"taskType"`
	RepeatType string `json:"repeatType"`
	FullName   string `json:"fullName"`
}

// TemplateList lists the task templates (instances on the tasks.Meta chain) whose title or
// fullName contains query, case-insensitively; "" lists all. Shared by
// TaskSvc.getTaskTmplList and GET /api/tasks/templates.
func TemplateList(s *registry.Snapshot, query string) []TemplateInfo {
	q := strings.ToLower(query)
	out := []TemplateInfo{}
	for _, el := range s.Sorted() {
		if el.Layer != registry.LayerInstance || !s.IsA(el.FullName, "tasks.Meta") {
			continue
		}
		if q != "" && !strings.Contains(strings.ToLower(el.Title), q) && !strings.Contains(strings.ToLower(el.FullName), q) {
			continue
		}
		// The same default the center runs the template by: a template whose Type has no
		// repeatType (a user Type built on tasks.Meta) runs once, and says so.
		repeat := strOr(el.Definition, "repeatType", RepeatOnce)
		out = append(out, TemplateInfo{Title: el.Title, TaskType: el.Type, RepeatType: repeat, FullName: el.FullName})
	}
	return out
}
