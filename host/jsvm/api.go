// Package jsvm runs an app's JavaScript in goja: it compiles each file once, keeps a pool of warm
// runtimes per element, gives every execution its own limits (time, call depth, memory) and maps
// values and errors between Go and JavaScript.
//
// It owns the sandbox and nothing else: it imports no other Trellis package, knows nothing of
// events, tasks or storage, and reaches the host only through the HostCaller it is given. Code
// running inside it has no file system, process, network or host objects; the only bindings are
// app, console and a require limited to the element's own files and commons/.
//
// Each element runs in runtimes of its own, so globals or prototypes one element changes are
// never seen by another element. Module-level state of an element may survive between its runs
// on the same warm runtime, as in Node.js; code must not rely on it.
package jsvm

import (
	"context"
	"time"

	"github.com/trellis-run/trellis/host/vocab"
)

// Source is everything the sandbox needs of one app version: the code of every element that
// runs JavaScript, the Go-backed elements JavaScript may call, and the app's commons/ modules.
// A Source is immutable once handed to Load; a new version is a new Source.
type Source struct {
	// AppName is what `app.name` returns.
	AppName string `json:"appName"`
	// Env holds the variables app.json declares; `app.env(name)` reads them.
	Env map[string]string `json:"env,omitempty"`
	// Timezone is the app's IANA timezone name ("" = UTC); datetimes returned to JS use it.
	Timezone string `json:"timezone,omitempty"`
	// Elements is keyed by fullName ("services.BackupSvc").
	Elements map[string]*Element `json:"elements"`
	// Commons maps a path under the app root ("commons/util.js") to its source. Any element may
	// require("commons/util") or require("commons/util.js").
	Commons map[string]string `json:"commons,omitempty"`
}

// Kind says how an element's runtime object is made.
type Kind string

const (
	// KindJS is an element whose runtime object is the exports of its entry module.
	KindJS Kind = "js"
	// KindHost is an element implemented in Go by the host (EventSvc, TaskSvc, models...): its
	// runtime object in JS is a proxy whose methods go through HostCaller.CallHost.
	KindHost Kind = "host"
	// KindData is an element with no code (a Meta, a Type, a task template without index.js):
	// app.getElement returns its definition as a frozen plain object.
	KindData Kind = "data"
)

// Element is one element as the sandbox sees it.
type Element struct {
	FullName string `json:"fullName"`
	Kind     Kind   `json:"kind"`
	// Dir is the element's directory relative to its app root ("services/BackupSvc"); it is
	// what stack traces show in front of file names ("services/BackupSvc/index.js:3:7").
	Dir string `json:"dir,omitempty"`
	// Entry is the entry file name inside Dir (default "index.js").
	Entry string `json:"entry,omitempty"`
	// Files maps a file name relative to Dir ("index.js", "lib/x.js") to its source. Only these
	// files and Source.Commons can be required.
	Files map[string]string `json:"files,omitempty"`
	// Methods lists the callable methods of a KindHost element, so the proxy can be built
	// without a round trip to the host.
	Methods []string `json:"methods,omitempty"`
	// Definition is the element's merged e.json, given to KindData elements and to code as
	// `module.element`... (read-only copy).
	Definition map[string]any `json:"definition,omitempty"`
	// Timeout is the element's own limit for one execution (0 = Limits.Timeout).
	Timeout time.Duration `json:"timeout,omitempty"`
	// Loader, when set, names a Type element whose loader.js (in that element's Files) exports
	// load(definition, app); the runtime object of this element is what load returns, built once
	// per runtime and cached (JitAi's loader chain for user Types). The loader file may also be
	// the one the Type's definition names in "loader"; load gets a third argument, a proxy of
	// this element's own exports when it has an entry file, and a function the loaded object
	// lacks is looked up in those exports.
	Loader string `json:"loader,omitempty"`
}

// HostCaller is how JavaScript reaches Go-backed elements. The sandbox calls it when code calls
// a method on the runtime object of a KindHost element, and for app.getBuiltin(name).
//
// args are the JS arguments exported to plain Go values (see Call.Args for the value model);
// the result must be made of the same plain values. An error that carries a code (see CodedError)
// is thrown into JS as an Error with that `.code`. Implementations must be safe for concurrent
// use; ctx ends when the calling execution's deadline passes.
type HostCaller interface {
	CallHost(ctx context.Context, call HostCall) (any, error)
}

// HostCall is one call from JavaScript to a Go-backed element.
type HostCall struct {
	// FullName is the element; Builtin is true when it came through app.getBuiltin, so the host
	// must use its own built-in element even if the app overrides that fullName.
	FullName string `json:"fullName"`
	Builtin  bool   `json:"builtin,omitempty"`
	Method   string `json:"method"`
	Args     []any  `json:"args"`
	// Caller is the fullName of the element whose code made the call; RequestID and NodeID are
	// copied from the execution (Call) it happens in, so the host can link child work to it.
	Caller    string `json:"caller,omitempty"`
	RequestID string `json:"requestId,omitempty"`
	NodeID    string `json:"nodeId,omitempty"`
}

// HostCallerFunc adapts a function to HostCaller.
type HostCallerFunc func(ctx context.Context, call HostCall) (any, error)

// CallHost calls f.
func (f HostCallerFunc) CallHost(ctx context.Context, call HostCall) (any, error) {
	return f(ctx, call)
}

// CodedError is implemented by errors that carry a machine-readable code ("not_found",
// "invalid_argument"...). The sandbox gives that code to the JS Error it throws.
type CodedError = vocab.CodedError

// Limits bound one execution. Zero fields take the defaults of DefaultLimits.
type Limits struct {
	// Timeout ends an execution that runs longer (error code "timeout").
	Timeout time.Duration `json:"timeout,omitempty"`
	// MemoryBytes ends an execution that allocates more (error code "memory_limit"). Only the
	// isolated executor enforces it as a hard cap; see docs/sandbox.md.
	MemoryBytes int64 `json:"memoryBytes,omitempty"`
	// MaxCallDepth ends deep recursion (error code "stack_overflow").
	MaxCallDepth int `json:"maxCallDepth,omitempty"`

	// The caps below bound what one execution hands out of the sandbox, so that a value made in
	// JavaScript can cost the host no more than they say. They are enforced where the bytes are
	// made (the VM's export, in the worker for the isolated executor), before anything is copied
	// or sent. Sizes are of the value's JSON.

	// MaxResultBytes caps the result: a larger one ends the execution with "result_too_large"
	// and no value. (The arguments handed back with Call.ReturnArgs are held to MaxMessageBytes,
	// the same way.)
	MaxResultBytes int64 `json:"maxResultBytes,omitempty"`
	// MaxErrorBytes caps each of an error's message, stack and details; past it they are cut
	// with a marker naming the cap.
	MaxErrorBytes int64 `json:"maxErrorBytes,omitempty"`
	// MaxConsoleBytes caps the console output of one execution (every entry counts its message
	// and 32 bytes); past it entries are dropped and a last warn entry says how many.
	MaxConsoleBytes int64 `json:"maxConsoleBytes,omitempty"`
	// MaxValueDepth caps how deeply arrays and objects may nest in a value that crosses the
	// sandbox boundary (arguments, results, host calls): deeper ones are refused.
	MaxValueDepth int `json:"maxValueDepth,omitempty"`
	// MaxMessageBytes caps one value JavaScript hands to the host or to another element in one
	// piece (a host call's arguments, such as sendEvent's kwargs or a model row): a larger one is
	// refused with "invalid_argument" before it is copied.
	MaxMessageBytes int64 `json:"maxMessageBytes,omitempty"`
}

// DefaultLimits are the limits of an execution whose element and caller set none.
var DefaultLimits = Limits{Timeout: 30 * time.Second, MemoryBytes: 256 << 20, MaxCallDepth: 2000,
	MaxResultBytes: 1 << 20, MaxErrorBytes: 64 << 10, MaxConsoleBytes: 256 << 10, MaxValueDepth: 64,
	MaxMessageBytes: 8 << 20}

// WithDefaults returns l with every zero field set from DefaultLimits.
func (l Limits) WithDefaults() Limits {
	if l.Timeout <= 0 {
		l.Timeout = DefaultLimits.Timeout
	}
	if l.MemoryBytes <= 0 {
		l.MemoryBytes = DefaultLimits.MemoryBytes
	}
	if l.MaxCallDepth <= 0 {
		l.MaxCallDepth = DefaultLimits.MaxCallDepth
	}
	l = l.withCapDefaults(DefaultLimits)
	return l
}

// withCapDefaults sets every zero size cap of l from d.
func (l Limits) withCapDefaults(d Limits) Limits {
	if l.MaxResultBytes <= 0 {
		l.MaxResultBytes = d.MaxResultBytes
	}
	if l.MaxErrorBytes <= 0 {
		l.MaxErrorBytes = d.MaxErrorBytes
	}
	if l.MaxConsoleBytes <= 0 {
		l.MaxConsoleBytes = d.MaxConsoleBytes
	}
	if l.MaxValueDepth <= 0 {
		l.MaxValueDepth = d.MaxValueDepth
	}
	if l.MaxMessageBytes <= 0 {
		l.MaxMessageBytes = d.MaxMessageBytes
	}
	return l
}

// Inherit returns l with every zero field taken from d (a call's limits over its executor's).
func (l Limits) Inherit(d Limits) Limits {
	if l.Timeout <= 0 {
		l.Timeout = d.Timeout
	}
	if l.MemoryBytes <= 0 {
		l.MemoryBytes = d.MemoryBytes
	}
	if l.MaxCallDepth <= 0 {
		l.MaxCallDepth = d.MaxCallDepth
	}
	return l.withCapDefaults(d)
}

// Call is one execution: a function exported by a JS element, called with arguments.
//
// Values crossing the boundary (Args, Result.Value, HostCall.Args) are plain Go values as
// encoding/json produces them — nil, bool, float64 (or int64/int for integers), string,
// []any, map[string]any — plus time.Time, which becomes a JS Date (and a JS Date becomes a
// time.Time). Functions and symbols do not cross; they become nil.
type Call struct {
	Element  string `json:"element"`
	Function string `json:"function"`
	Args     []any  `json:"args"`
	// Limits for this execution; zero fields fall back to the element's Timeout, then to
	// DefaultLimits.
	Limits Limits `json:"limits"`
	// RequestID and NodeID identify the execution for the host (see HostCall) and are visible to
	// JS through ctx objects the host passes in Args.
	RequestID string `json:"requestId,omitempty"`
	NodeID    string `json:"nodeId,omitempty"`
	// Ctx, when set, makes the sandbox pass a handler context object as one more argument after
	// Args: {requestId, nodeId, deadline, attempt, log(...), fail(reason), waitCallback()}.
	// fail and waitCallback end nothing by themselves; they mark the Result (Failed,
	// WaitCallback) and the handler returns normally.
	Ctx *HandlerContext `json:"ctx,omitempty"`
	// ReturnArgs makes a successful execution hand back its arguments as the function left them
	// (Result.Args): the function may change the objects it was given, and the caller keeps the
	// changes (a node's hooks change their data argument this way). Off, Result.Args is nil.
	ReturnArgs bool `json:"returnArgs,omitempty"`
	// Around, when set, runs hooks of Element before and after Function in this same Execute —
	// for the isolated executor, one trip to a worker instead of three (a node's hooks,
	// docs/hooks.md). See Around.
	Around *Around `json:"around,omitempty"`
}

// Around names the hooks an Execute runs around its call. Each hook is an execution of its own,
// with the call's limits and a deadline of its own (the call's timeout from its start), its
// console and its error; a hook that fails changes nothing of the call. What they did comes back
// in Result.Hooks, Before's first. The whole Execute may take Budget.
type Around struct {
	// Before runs first. When it succeeds, its first argument's Field, as the hook left it,
	// replaces the call's first argument's Field (both arguments are objects).
	Before *HookStep `json:"before,omitempty"`
	// After runs once the call has ended well — no error, not ctx.fail, not ctx.waitCallback —
	// with the call's value set as its first argument's Field first.
	After *HookStep `json:"after,omitempty"`
}

// HookStep is one hook of an Around: Function of the call's element, called with Args, which it
// hands back as it left them (as Call.ReturnArgs). NodeID identifies its host calls.
type HookStep struct {
	Function string `json:"function"`
	Args     []any  `json:"args"`
	Field    string `json:"field"`
	NodeID   string `json:"nodeId,omitempty"`
}

// HookOutcome is what one hook of Call.Around did: its Result (Args as it left them, when it
// succeeded), its error, and when it ran.
type HookOutcome struct {
	Function   string    `json:"function"`
	Result     Result    `json:"result"`
	Err        *Error    `json:"error,omitempty"`
	Start, End time.Time `json:"-"`
}

// Budget is the longest an Execute of c may take: its timeout once per execution it makes (the
// call and its hooks). timeout is the call's resolved timeout.
func (c *Call) Budget(timeout time.Duration) time.Duration {
	n := 1
	if c.Around != nil {
		if c.Around.Before != nil {
			n++
		}
		if c.Around.After != nil {
			n++
		}
	}
	return time.Duration(n) * timeout
}

// HandlerContext is the data of the ctx object an event handler or task function receives.
type HandlerContext struct {
	Attempt int            `json:"attempt,omitempty"`
	Extra   map[string]any `json:"extra,omitempty"` // more read-only fields, copied onto ctx
}

// LogEntry is one console call made during an execution.
type LogEntry struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"` // log, info, warn, error, debug
	Message string    `json:"message"`
}

// Result is what an execution returned, with what it wrote to the console.
type Result struct {
	Value any        `json:"value"`
	Logs  []LogEntry `json:"logs,omitempty"`
	// Duration is the wall time the execution took inside the sandbox.
	Duration time.Duration `json:"duration"`
	// Failed holds the reason given to ctx.fail(reason), when the handler called it: a failure
	// the handler reports, not an exception.
	Failed *string `json:"failed,omitempty"`
	// WaitCallback is true when the handler called ctx.waitCallback().
	WaitCallback bool `json:"waitCallback,omitempty"`
	// Args, with Call.ReturnArgs, holds each of Call.Args as it was when the function returned
	// (the plain values of Call.Args; a Date stays a time.Time), in order; nil on failure.
	Args []any `json:"args,omitempty"`
	// Hooks holds what the hooks of Call.Around did, in the order they ran.
	Hooks []HookOutcome `json:"hooks,omitempty"`
}

// Executor runs calls against the Source it was last given. Both the in-process VM and the
// isolated worker pool (package isolate) implement it; the host picks one by configuration.
//
// Load replaces the source: executions already running finish on the old version, new ones
// use the new one. Execute is safe for concurrent use. A failed execution returns (Result with
// the logs written so far, *Error). Close stops the executor; Execute after Close fails.
type Executor interface {
	Load(src *Source) error
	Execute(ctx context.Context, call Call) (Result, error)
	Close() error
}

// Options configure an in-process VM (see New).
type Options struct {
	// Host receives calls to KindHost elements and app.getBuiltin; nil makes such calls fail
	// with code "unavailable".
	Host HostCaller
	// Limits are the defaults for executions; zero fields take DefaultLimits.
	Limits Limits
	// MemoryProbe, when set, returns the bytes the process has in use; the VM samples it while an
	// execution runs and ends the execution with "memory_limit" when it grows by more than
	// Limits.MemoryBytes. Only meaningful where one execution runs at a time in the process (an
	// isolate worker); nil disables the check.
	MemoryProbe func() uint64
	// MaxIdlePerElement caps the warm runtimes kept per element (default 4).
	MaxIdlePerElement int
}
