package timers

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/trellis-run/trellis/host/vocab"
)

// Task statuses (docs/reference.md §4). waiting, paused and running are live; the other three
// are final.
const (
	StatusWaiting   = "waiting"
	StatusPaused    = "paused" // a waiting task held by the pause operation until resume (Store.Operate)
	StatusRunning   = "running"
	StatusSuccess   = "success"
	StatusFail      = "fail"
	StatusForcedEnd = "forcedEnd"
)

// Limits on task fields, so one bad caller cannot fill the store with huge keys.
const (
	// MaxIDLen bounds a caller-chosen task id.
	MaxIDLen = 128
	// MaxKeyLen bounds a date-field Key.
	MaxKeyLen = 1024
	// MaxNameLen bounds FullName, FuncName and TaskType.
	MaxNameLen = 512
	// DefaultPageSize is ListQuery's page size when none is given; MaxPageSize the largest allowed.
	DefaultPageSize = 20
	MaxPageSize     = 1000
)

// TaskError is the error part of a failed task record, as the JS API shows it.
type TaskError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Stack   string `json:"stack"`
}

// Task is one task record (docs/reference.md §4). Times are returned in UTC; StartTime keeps the
// precision it was created with, the times the store sets are kept to the millisecond or finer.
type Task struct {
	ID        string         `json:"taskId"`   // "task_" + random, made by Create when empty
	FullName  string         `json:"fullName"` // the task template element
	FuncName  string         `json:"funcName"`
	TaskType  string         `json:"taskType"`
	ArgDict   map[string]any `json:"argDict"`
	StartTime time.Time      `json:"startTime"`
	Status    string         `json:"status"`
	Result    any            `json:"result"`
	Error     *TaskError     `json:"error"`
	RequestID string         `json:"requestId"`
	NodeID    string         `json:"nodeId"`
	// Key is unique among waiting tasks ("" = none): a date-field template keeps one pending task
	// per model row under a key naming the template and the row, and moves it by creating anew.
	Key string `json:"key,omitempty"`
	// Attempt is 0 until the first run, 1 on the first run, and grows by one on each later run:
	// a retry (Store.Retry) or a dead host's run taken over.
	Attempt int `json:"attempt"`
	// Owner is the host running (or that ran) the task.
	Owner     string    `json:"host,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	StartedAt time.Time `json:"startedAt"` // of the latest run; zero until claimed
	EndedAt   time.Time `json:"endedAt"`   // zero until finished or force-ended
	// FirstStartedAt is when the first run started (zero until claimed); retries and takeovers
	// keep it, so a retry policy can measure its window from it.
	FirstStartedAt time.Time `json:"firstStartedAt"`
	// PausedWith is PausedWithRequest for a task paused by its request's pause (it resumes with
	// the request, not on its own); "" otherwise.
	PausedWith string `json:"pausedWith,omitempty"`
}

// PausedWithRequest is Task.PausedWith of a task its request's pause holds.
const PausedWithRequest = "request"

// Finished says whether status is final: the task will not run (again).
func Finished(status string) bool {
	return status == StatusSuccess || status == StatusFail || status == StatusForcedEnd
}

// ValidStatus says whether s is one of the six task statuses.
func ValidStatus(s string) bool {
	return s == StatusWaiting || s == StatusPaused || s == StatusRunning || Finished(s)
}

// The node operations on a task record (Store.Operate; docs/reference.md §4.4).
const (
	OpPause      = "pause"
	OpResume     = "resume"
	OpSkip       = "skip"
	OpForcedFail = "forcedFail"
	OpRetry      = "retry"
)

// OpFrom lists, for each operation, the statuses it applies to; Operate refuses the others with
// ErrConflict.
var OpFrom = map[string][]string{
	OpPause:      {StatusWaiting},
	OpResume:     {StatusPaused},
	OpSkip:       {StatusWaiting, StatusPaused, StatusFail},
	OpForcedFail: {StatusWaiting, StatusPaused, StatusRunning},
	OpRetry:      {StatusFail},
}

// Op is one node operation on a task record (Store.Operate).
type Op struct {
	Name string // OpPause, OpResume, OpSkip, OpForcedFail or OpRetry
	// Error is forcedFail's: the record's error (required).
	Error *TaskError
	// ArgDict, with retry, replaces the task's argDict; nil keeps it.
	ArgDict map[string]any
}

// ValidateOp checks an operation and returns the new argDict as JSON ("" = keep).
func ValidateOp(op Op) (string, error) {
	if _, ok := OpFrom[op.Name]; !ok {
		return "", fmt.Errorf("%w: operation %q is not one of pause, resume, skip, forcedFail, retry", ErrInvalid, op.Name)
	}
	if op.Name == OpForcedFail && op.Error == nil {
		return "", fmt.Errorf("%w: forcedFail needs the record's error", ErrInvalid)
	}
	if op.Name != OpRetry || op.ArgDict == nil {
		return "", nil
	}
	b, err := json.Marshal(op.ArgDict)
	if err != nil {
		return "", fmt.Errorf("%w: argDict cannot be stored as JSON: %v", ErrInvalid, err)
	}
	return string(b), nil
}

// OpConflict is Operate's ErrConflict for a task in status, which op does not apply to.
func OpConflict(id, op, status string) error {
	return fmt.Errorf("%w: cannot %s task %s: it is %s", ErrConflict, op, id, status)
}

// OpRequestConflict is Operate's ErrConflict for a task whose request's state refuses op
// (OperateRequest): every operation once the request is revoked, resume while the request's
// pause holds the task.
func OpRequestConflict(t Task, op, requestState string) error {
	if requestState == RequestRevoked {
		return fmt.Errorf("%w: cannot %s task %s: it is %s and its request %s is revoked", ErrConflict, op, t.ID, t.Status, t.RequestID)
	}
	return fmt.Errorf("%w: cannot %s task %s: it is %s with its request %s, which resumes it", ErrConflict, op, t.ID, t.Status, t.RequestID)
}

// The request operations (Store.OperateRequest; docs/tasks.md, "Request operations").
const (
	RequestPause  = "pause"
	RequestResume = "resume"
	RequestRevoke = "revoke"
)

// Request states a store records (OperateRequest); "" is a request no operation holds.
const (
	RequestPaused  = "paused"
	RequestRevoked = "revoked"
)

// RequestRetention is how long a store keeps a revoked request's state, and the index of a
// request's tasks after its last task was created (a paused request keeps both until resumed):
// a week, as the request tracker (host/requests) keeps a request's unfinished nodes.
const RequestRetention = 7 * 24 * time.Hour

// ValidateRequestOp checks OperateRequest's arguments and returns the error as JSON ("" for
// pause and resume).
func ValidateRequestOp(requestID, op string, terr *TaskError) (string, error) {
	if requestID == "" {
		return "", fmt.Errorf("%w: requestId is empty", ErrInvalid)
	}
	if err := checkToken("requestId", requestID, MaxNameLen); err != nil {
		return "", err
	}
	switch op {
	case RequestPause, RequestResume:
		return "", nil
	case RequestRevoke:
		if terr == nil {
			return "", fmt.Errorf("%w: revoke needs the error its tasks end with", ErrInvalid)
		}
		b, _ := json.Marshal(terr)
		return string(b), nil
	}
	return "", fmt.Errorf("%w: request operation %q is not one of pause, resume, revoke", ErrInvalid, op)
}

// RequestConflict is OperateRequest's ErrConflict for a pause or resume of a revoked request.
func RequestConflict(requestID, op string) error {
	return fmt.Errorf("%w: cannot %s request %s: it is revoked", ErrConflict, op, requestID)
}

// ListQuery selects task records, newest first. Empty FullName/Status match all. Page counts
// from 1 (0 = 1); PageSize 0 means DefaultPageSize, at most MaxPageSize.
type ListQuery struct {
	FullName, Status string
	Page, PageSize   int
}

// Normalize applies the defaults and rejects out-of-range values with ErrInvalid, so every
// backend pages alike.
func (q ListQuery) Normalize() (ListQuery, error) {
	if q.Status != "" && !ValidStatus(q.Status) {
		return q, fmt.Errorf("%w: status %q is not one of waiting, paused, running, success, fail, forcedEnd", ErrInvalid, q.Status)
	}
	if q.Page < 0 {
		return q, fmt.Errorf("%w: page %d must be 1 or more", ErrInvalid, q.Page)
	}
	if q.PageSize < 0 || q.PageSize > MaxPageSize {
		return q, fmt.Errorf("%w: pageSize %d must be between 1 and %d", ErrInvalid, q.PageSize, MaxPageSize)
	}
	if q.Page == 0 {
		q.Page = 1
	}
	if q.PageSize == 0 {
		q.PageSize = DefaultPageSize
	}
	if q.Page > 1<<40/q.PageSize {
		return q, fmt.Errorf("%w: page %d is too large", ErrInvalid, q.Page)
	}
	return q, nil
}

// Offset is the number of matching rows before the page.
func (q ListQuery) Offset() int { return (q.Page - 1) * q.PageSize }

// Store keeps tasks durably. Safe for concurrent use by many hosts (Redis) or goroutines
// (embedded). Every method wraps ErrUnavailable when the backend cannot serve, ErrInvalid for
// malformed arguments.
type Store interface {
	// Create stores a waiting task. With a Key, a waiting task holding that key is removed
	// (deleted, not a record any more) and its id returned in replaced — atomically. An empty
	// ID gets a new one; an ID already stored is ErrConflict.
	Create(ctx context.Context, t Task) (created Task, replaced []string, err error)
	// CreateRunning records a task that starts now on owner (a cron/interval tick the caller
	// has already claimed): status running, Attempt 1, lease as in Claim. A zero StartTime
	// means now. It takes no Key.
	CreateRunning(ctx context.Context, t Task, owner string, lease time.Duration) (Task, error)
	// Get returns the record of id, or ErrNotFound.
	Get(ctx context.Context, id string) (Task, error)
	// List returns one page of records matching q, newest (by creation) first, and how many
	// match in all.
	List(ctx context.Context, q ListQuery) (rows []Task, total int64, err error)
	// RemoveKey deletes the waiting task holding key (if any) and returns its id(s). Idempotent.
	RemoveKey(ctx context.Context, key string) ([]string, error)
	// Claim moves up to limit waiting tasks with StartTime <= now to running for owner, with a
	// lease of lease from now; across all hosts each due task is claimed by exactly one caller.
	// Running tasks whose lease expired before now (their host died) are claimed again too,
	// with Attempt+1. The earliest due come first.
	Claim(ctx context.Context, now time.Time, owner string, lease time.Duration, limit int) ([]Task, error)
	// NextDue is the earliest StartTime among waiting tasks (ok=false: none), or the earliest
	// lease expiry of running tasks if sooner. It may be up to a millisecond late, never early.
	NextDue(ctx context.Context) (at time.Time, ok bool, err error)
	// Extend renews, to now+lease, the lease of those of ids that owner still runs (heartbeat);
	// ids finished, force-ended or taken over are skipped.
	Extend(ctx context.Context, owner string, ids []string, lease time.Duration) error
	// Finish records the end of a run owner holds: status success or fail, result or error.
	// A task force-ended meanwhile stays forcedEnd (returns it, ErrConflict); so does a task
	// another host took over or that is not running.
	Finish(ctx context.Context, id, owner, status string, result any, terr *TaskError) (Task, error)
	// Retry records that the run owner holds failed with terr and that the task runs again at
	// at: status waiting, StartTime at, Error terr (the record's error until the next end),
	// lease and Key dropped (a retry is not the pending task of a key: a new task may take it).
	// Attempt stays the failed run's; the next Claim makes it Attempt+1. The same conflicts as
	// Finish; a zero at or a nil terr is ErrInvalid.
	Retry(ctx context.Context, id, owner string, at time.Time, terr *TaskError) (Task, error)
	// ForcedEnd: waiting -> forcedEnd (never runs); running -> forcedEnd, and the owner's runner
	// learns it through ForcedEnds; already finished -> ErrConflict (message says the status);
	// unknown -> ErrNotFound. It returns the record.
	ForcedEnd(ctx context.Context, id string) (Task, error)
	// ForcedEnds reports the ids of tasks force-ended (ForcedEnd) or force-failed (Operate's
	// forcedFail) while running, from the call on, until ctx ends or the store closes (then the
	// channel closes). Each call has its own channel; every runner wherever it runs learns
	// within 1 s, cancels the run and records nothing of it.
	ForcedEnds(ctx context.Context) (<-chan string, error)
	// Operate applies a node operation to id, atomically, from the statuses OpFrom allows
	// (others: ErrConflict naming the status, returning the record; unknown id: ErrNotFound):
	//   - pause: waiting -> paused: no Claim takes it, whatever its StartTime; its Key is freed.
	//   - resume: paused -> waiting, due at its StartTime (one already past: at once).
	//   - skip: waiting, paused or fail -> success, never run (EndedAt now; error kept).
	//   - forcedFail: waiting, paused or running -> fail with op.Error (EndedAt now); a running
	//     task is reported on ForcedEnds, as ForcedEnd's.
	//   - retry: fail -> waiting, due now (StartTime now, EndedAt cleared, the error kept until
	//     the next end), with op.ArgDict when not nil; the next Claim makes it Attempt+1.
	// It returns the record after the change. A task whose request is revoked (OperateRequest)
	// refuses every operation, and one its request's pause holds (PausedWith) refuses resume:
	// ErrConflict (OpRequestConflict).
	Operate(ctx context.Context, id string, op Op) (Task, error)
	// OperateRequest applies a request operation to every task of requestID (Task.RequestID)
	// and records the request's state, atomically, so the tasks created in the request later
	// follow it too (docs/tasks.md, "Request operations"):
	//   - pause: every waiting task -> paused with PausedWith "request" (its Key freed, as
	//     Operate's pause); from then on Create and Retry in the request make such paused tasks.
	//     Running tasks go on.
	//   - resume: every task paused with its request -> waiting, due at its StartTime; tasks
	//     paused on their own stay paused. Create and Retry make waiting tasks again.
	//   - revoke: every waiting or paused task -> fail with terr (EndedAt now); from then on
	//     Create and Retry in the request make such failed tasks (Create keeps no Key and
	//     replaces none). Running tasks finish.
	// It returns the tasks it changed, after the change. Repeating an operation changes nothing
	// more; pause or resume of a revoked request is ErrConflict (RequestConflict); resume of a
	// request that is not paused changes nothing. CreateRunning (a tick: a request of its own)
	// does not look at the request's state. A revoked request's state is kept for
	// RequestRetention.
	OperateRequest(ctx context.Context, requestID, op string, terr *TaskError) ([]Task, error)
	// RequestState is the state OperateRequest recorded for requestID: RequestPaused,
	// RequestRevoked, or "" for a request no operation holds (or one never seen).
	RequestState(ctx context.Context, requestID string) (string, error)
	// Pending counts waiting tasks (health/metrics).
	Pending(ctx context.Context) (int64, error)
	// Close releases the store's resources (not a Redis client it was given). Safe to call twice.
	Close() error
}

// StoreClock is implemented by stores that several hosts share and whose own clock says what is
// due (Redis's TIME): a Runner on the default clock follows it, so a host whose clock runs ahead
// fires no task early and takes over no live lease, and one behind fires nothing late.
type StoreClock interface {
	Now(ctx context.Context) (time.Time, error)
}

// PollHinter is implemented by stores that know how often a runner must look for due tasks
// created elsewhere: Redis learns of other hosts' tasks only by asking, the embedded store's
// tasks come from its own process, which calls Runner.Notify.
type PollHinter interface {
	PollHint() time.Duration
}

// NewID returns a new task id: "task_" and 20 random base32 characters (100 bits).
func NewID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[b[i]&31]
	}
	return "task_" + string(b)
}

// ValidateCreate checks a task given to Create and returns it as a new waiting record (ID filled
// in, store-set fields cleared); every backend calls it so that all reject the same input with
// the same message.
func ValidateCreate(t Task) (Task, error) {
	if t.StartTime.IsZero() {
		return t, fmt.Errorf("%w: startTime is zero; give the time the task should run", ErrInvalid)
	}
	return validateNew(t)
}

// ValidateCreateRunning checks the arguments of CreateRunning and returns the task with its ID
// filled in and a zero StartTime replaced by now.
func ValidateCreateRunning(t Task, owner string, lease time.Duration, now time.Time) (Task, error) {
	if t.Key != "" {
		return t, fmt.Errorf("%w: key %q: a running task holds no key; create it without one", ErrInvalid, t.Key)
	}
	if err := ValidateOwner(owner, lease); err != nil {
		return t, err
	}
	if t.StartTime.IsZero() {
		t.StartTime = now
	}
	return validateNew(t)
}

func validateNew(t Task) (Task, error) {
	if t.FullName == "" {
		return t, fmt.Errorf("%w: fullName is empty; give the task template element, e.g. tasks.Reminder", ErrInvalid)
	}
	for _, f := range []struct{ name, v string }{{"fullName", t.FullName}, {"funcName", t.FuncName}, {"taskType", t.TaskType}, {"requestId", t.RequestID}, {"nodeId", t.NodeID}} {
		if len(f.v) > MaxNameLen {
			return t, fmt.Errorf("%w: %s is %d bytes, at most %d allowed", ErrInvalid, f.name, len(f.v), MaxNameLen)
		}
		if !utf8.ValidString(f.v) {
			return t, fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalid, f.name)
		}
	}
	if t.Status != "" && t.Status != StatusWaiting {
		return t, fmt.Errorf("%w: status %q: the store sets a new task's status; leave it empty", ErrInvalid, t.Status)
	}
	if t.ID == "" {
		t.ID = NewID()
	} else if err := checkToken("taskId", t.ID, MaxIDLen); err != nil {
		return t, err
	}
	if len(t.Key) > MaxKeyLen {
		return t, fmt.Errorf("%w: key is %d bytes, at most %d allowed", ErrInvalid, len(t.Key), MaxKeyLen)
	}
	if !utf8.ValidString(t.Key) {
		return t, fmt.Errorf("%w: key is not valid UTF-8", ErrInvalid)
	}
	if _, err := json.Marshal(t.ArgDict); err != nil {
		return t, fmt.Errorf("%w: argDict cannot be stored as JSON: %v", ErrInvalid, err)
	}
	if y := t.StartTime.UTC().Year(); y < 1900 || y > 2200 {
		return t, fmt.Errorf("%w: startTime %s is out of range (years 1900 to 2200)", ErrInvalid, t.StartTime)
	}
	t.Status = StatusWaiting
	t.Result, t.Error = nil, nil
	t.Attempt = 0
	t.Owner = ""
	t.CreatedAt, t.UpdatedAt, t.StartedAt, t.EndedAt, t.FirstStartedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return t, nil
}

// ValidateOwner checks the owner and lease arguments of Claim, CreateRunning and Extend.
func ValidateOwner(owner string, lease time.Duration) error {
	if owner == "" {
		return fmt.Errorf("%w: owner is empty; pass this host's instance id", ErrInvalid)
	}
	if len(owner) > MaxNameLen {
		return fmt.Errorf("%w: owner is %d bytes, at most %d allowed", ErrInvalid, len(owner), MaxNameLen)
	}
	if lease < time.Millisecond {
		return fmt.Errorf("%w: lease %s must be at least 1ms", ErrInvalid, lease)
	}
	return nil
}

// ValidateFinish checks Finish's status, result and error and returns the result as JSON.
func ValidateFinish(status string, result any, terr *TaskError) ([]byte, error) {
	if status != StatusSuccess && status != StatusFail {
		return nil, fmt.Errorf("%w: finish status %q must be success or fail", ErrInvalid, status)
	}
	if status == StatusSuccess && terr != nil {
		return nil, fmt.Errorf("%w: a successful task has no error; finish it as fail", ErrInvalid)
	}
	b, err := vocab.EncodeJSON(result)
	if err != nil {
		return nil, fmt.Errorf("%w: result cannot be stored as JSON: %v", ErrInvalid, err)
	}
	return b, nil
}

// ValidateRetry checks Retry's time and error.
func ValidateRetry(at time.Time, terr *TaskError) error {
	if at.IsZero() {
		return fmt.Errorf("%w: retry time is zero; give the time the task should run again", ErrInvalid)
	}
	if y := at.UTC().Year(); y < 1900 || y > 2200 {
		return fmt.Errorf("%w: retry time %s is out of range (years 1900 to 2200)", ErrInvalid, at)
	}
	if terr == nil {
		return fmt.Errorf("%w: a retry needs the error of the failed run", ErrInvalid)
	}
	return nil
}

// ValidateID checks an id argument (Get, ForcedEnd, Finish) so a typo reads as such.
func ValidateID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: taskId is empty", ErrInvalid)
	}
	return nil
}

func checkToken(field, v string, max int) error {
	if len(v) > max {
		return fmt.Errorf("%w: %s is %d bytes, at most %d allowed", ErrInvalid, field, len(v), max)
	}
	if !utf8.ValidString(v) || strings.IndexFunc(v, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return fmt.Errorf("%w: %s %q may not contain spaces or control characters", ErrInvalid, field, v)
	}
	return nil
}

// StoredArgs gives a new record's argDict the shape every store's Get returns: its JSON form
// decoded by vocab.DecodeJSON (integers int64, exact; other numbers float64). Stores return it
// from Create, so a caller sees the same value before and after a restart.
func StoredArgs(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	v, err := vocab.ViaJSON(m)
	if out, ok := v.(map[string]any); ok && err == nil {
		return out
	}
	return m
}
