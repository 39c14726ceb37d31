package web

import (
	"context"
	"time"

	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/modelrt"
	"github.com/trellis-run/trellis/host/models"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/signals"
	"github.com/trellis-run/trellis/host/tasks"
	"github.com/trellis-run/trellis/host/timers"
	"github.com/trellis-run/trellis/logstore"
)

// Deps is what the HTTP layer needs, as small interfaces this package owns — the way logstore
// names no driver. A *host.Host is App, Calls, Events and Logs; its task center and model
// runtime are Tasks and Models. Tests may pass anything that fits.
type Deps struct {
	App    App
	Calls  Calls
	Events Events
	Logs   Logs
	// Tasks and Models may be nil: their routes then answer 503.
	Tasks  Tasks
	Models Models
	// Editor writes elements and runs drafts; nil takes App when it is one too (a *host.Host
	// is), else the editing routes answer 503.
	Editor Editor
	// Drafts runs drafts and replays; nil takes App when it is one too, else 503.
	Drafts Drafts
	// Listeners lists the event listeners; nil takes App when it is one too, else 503.
	Listeners Listeners
	// Signals is what GET /api/signals/stream follows; nil takes App when it is one too, else 503.
	Signals Signals
}

// App is the loaded app and what /api/health reports of the host.
type App interface {
	Snapshot() *registry.Snapshot
	// Problems lists what the last hot reload could not apply.
	Problems() []registry.Problem
	// Location is the app timezone in which datetimes are read and written.
	Location() *time.Location
	Version() string
	Backends() map[string]string
}

// Calls runs service functions.
type Calls interface {
	CallService(ctx context.Context, fullName, fn string, args []any) (jsvm.Result, error)
}

// Events is the event center's operations.
type Events interface {
	SendEvent(ctx context.Context, req engine.SendRequest) (engine.SendResult, error)
	Resend(ctx context.Context, nodeID string) (engine.ResendResult, error)
	BulkResend(ctx context.Context, q logstore.Query) (engine.BulkResendResult, error)
	Callback(ctx context.Context, nodeID string, data any) (engine.CallbackResult, error)
	// NodeOp and RequestOp are the node and request operations (engine.Engine.NodeOp).
	NodeOp(ctx context.Context, op, nodeID string, data any) (any, error)
	RequestOp(ctx context.Context, op, requestID string) (engine.RequestOpResult, error)
	// EventLag is each listener's backlog on the bus (pending and undelivered).
	EventLag(ctx context.Context) (map[string][]bus.GroupLag, error)
}

// Logs is the execution log: its store (nil when not running) and its writer's counters.
type Logs interface {
	LogStore() logstore.Store
	LogStats() any
}

// Tasks is the task center's operations.
type Tasks interface {
	CreateTimerTask(ctx context.Context, req tasks.CreateRequest) (map[string]any, error)
	ListTasks(ctx context.Context, q timers.ListQuery) (map[string]any, error)
	GetTask(ctx context.Context, id string) (map[string]any, error)
	ForcedEnd(ctx context.Context, id string) (map[string]any, error)
	// TemplateStates lists the templates with their schedules and next ticks (?q= as
	// getTaskTmplList); RunTemplateNow makes a template's task due now (the console's "run now").
	TemplateStates(query string) []tasks.TemplateState
	RunTemplateNow(ctx context.Context, fullName string, argDict any) (map[string]any, error)
}

// Models is model CRUD.
type Models interface {
	Create(ctx context.Context, model string, row map[string]any, c modelrt.Caller) (map[string]any, error)
	Get(ctx context.Context, model string, id int64) (map[string]any, error)
	Update(ctx context.Context, model string, id int64, patch map[string]any, c modelrt.Caller) (map[string]any, error)
	Delete(ctx context.Context, model string, id int64, c modelrt.Caller) (map[string]any, error)
	Query(ctx context.Context, model string, q models.Query) (map[string]any, error)
	Import(ctx context.Context, model string, rows []map[string]any, c modelrt.Caller) (int, error)
}

// Editor is what the element editor needs of the host: saving and deleting an app element's
// directory under optimistic versions, and running a draft without saving it (host/edit.go,
// host/draft.go). definition is the text of the element's e.json, files its other files.
type Editor interface {
	// ElementVersion is the version of the app element on disk (false: no such element there).
	ElementVersion(fullName string) (string, bool)
	SaveElement(ctx context.Context, fullName, definition string, files map[string]string, version string, force bool) (map[string]any, error)
	DeleteElement(ctx context.Context, fullName, version string, force bool) (map[string]any, error)
	// SetElementField sets one top-level field of an app element's e.json, the rest of its text
	// kept (the console's enable and disable switches).
	SetElementField(ctx context.Context, fullName, key string, value any) (map[string]any, error)
}

// Drafts runs an element's draft without saving it: on arguments given (RunDraft), or on the
// input of a logged node (ReplayNode). A draft with problems is an invalid_element error; a run
// that fails is not an error: the answer's "error" says why. CheckDraft only validates it, as a
// save would, and answers its problems (none: an empty list) without writing or running it.
type Drafts interface {
	CheckDraft(ctx context.Context, fullName, definition string, files map[string]string) ([]registry.Problem, error)
	RunDraft(ctx context.Context, fullName, definition string, files map[string]string, fn string, args any) (map[string]any, error)
	ReplayNode(ctx context.Context, nodeID, definition string, files map[string]string) (map[string]any, error)
}

// Listeners is the event listeners of the app version the host runs (GET /api/events/listeners),
// as the engine reads them from the elements; their live lag comes from Events.EventLag.
type Listeners interface {
	EventListeners() []*engine.Listener
}

// Signals is the host's signals as GET /api/signals/stream reads them: a reader from just after
// lastEventID ("" = from now on), and whether signals after it may be missing (older than what
// the host keeps). A lastEventID that is no signal id is an invalid_argument error.
type Signals interface {
	SignalsFrom(lastEventID string) (r *signals.Reader, gap bool, err error)
}
