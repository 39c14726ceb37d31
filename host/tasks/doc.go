// Package tasks is the host's task center: it reads task templates (tasks.Meta instances) from
// the app, creates one-shot timer tasks (TaskSvc.createTimerTask), runs due tasks and the ticks
// of cron and interval templates by calling their function in the sandbox, retries failed runs
// by their template's retry policy (host/retry), force-ends tasks, and keeps the date-field tasks
// of model rows in step. Every run is a task record (package timers)
// and log rows of kind task.
//
// It owns the rules of tasks, not their storage (timers and timers/recurring), not the sandbox
// (jsvm) and not the HTTP or JS surfaces (web, services), which call into it.
package tasks
