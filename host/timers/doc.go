// Package timers owns durable one-shot tasks (docs/reference.md §4): the Task record, the Store contract
// every backend implements (redistimers for a cluster, localtimers embedded), and the Runner that
// fires one host's due tasks, heartbeats their leases and interrupts force-ended runs.
//
// A task is waiting until its StartTime, then exactly one host claims it (running, with a lease it
// renews), runs it and records success or fail. A host that dies mid-run lets its lease lapse;
// another host claims the task again with Attempt+1, so delivery is at least once. A failed run
// the host wants tried again (Fire returns a RetryError) goes back to waiting with a later
// StartTime (Store.Retry), in the store like any waiting task, and is claimed as the next
// attempt. forcedEnd stops a waiting task (a retry too) from ever running and interrupts a
// running one wherever it runs.
//
// It must not know about JavaScript, HTTP, the registry or cron/interval templates (those are
// host/timers/recurring and the host): Fire is a plain Go callback the host provides, and the
// task's fullName and funcName are opaque strings here.
package timers
