package services

import (
	"context"
	"fmt"
	"time"

	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/tasks"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

// Env is what a built-in method may use of the host. The host implements it; tests can hand in
// a host of their own on embedded storage.
type Env interface {
	// Snapshot is the app version the call runs against.
	Snapshot() *registry.Snapshot
	// LogStore is the execution log; nil when it is not running.
	LogStore() logstore.Store
	// Location is the app's timezone, for datetimes in and out.
	Location() *time.Location
	// SendEvent delivers an event through the event center.
	SendEvent(ctx context.Context, req engine.SendRequest) (engine.SendResult, error)
	// Resend runs a finished event node again.
	Resend(ctx context.Context, nodeID string) (engine.ResendResult, error)
	// NodeOp and RequestOp are the node and request operations (engine.Engine.NodeOp).
	NodeOp(ctx context.Context, op, nodeID string, data any) (any, error)
	RequestOp(ctx context.Context, op, requestID string) (engine.RequestOpResult, error)
	// Tasks is the task center; nil when it is not running.
	Tasks() *tasks.Center
}

// Invocation is one call of a built-in method after its arguments are bound.
type Invocation struct {
	Args map[string]any
	// Caller is the element whose code made the call ("" from HTTP or the CLI); RequestID and
	// NodeID tie the call to the execution it happens in.
	Caller    string
	RequestID string
	NodeID    string
}

// Method is the Go implementation of one built-in service method.
type Method func(ctx context.Context, env Env, inv Invocation) (any, error)

// Catalog maps "fullName.method" to its Go implementation.
type Catalog struct {
	methods map[string]Method
}

// NewCatalog returns the catalog of every built-in method Trellis implements.
func NewCatalog() *Catalog {
	c := &Catalog{methods: map[string]Method{}}
	registerTaskSvc(c)
	registerEventSvc(c)
	return c
}

// Register adds or replaces the implementation of fullName.method. Later parts of the host
// (event center, scheduler) register theirs when they start.
func (c *Catalog) Register(fullName, method string, m Method) {
	c.methods[fullName+"."+method] = m
}

// Has reports whether fullName.method has a Go implementation.
func (c *Catalog) Has(fullName, method string) bool {
	_, ok := c.methods[fullName+"."+method]
	return ok
}

// Call binds args against the method's declared functionList entry of el and runs it.
func (c *Catalog) Call(ctx context.Context, env Env, el *registry.Element, method string, args []any, inv Invocation) (any, error) {
	var spec *FunctionSpec
	for _, s := range ParseFunctionList(el.Definition) {
		if s.Name == method {
			spec = &s
			break
		}
	}
	if spec == nil {
		return nil, vocab.Errorf(vocab.CodeNotFound, "services: %s has no function %q", el.FullName, method)
	}
	m, ok := c.methods[el.FullName+"."+method]
	if !ok {
		return nil, fmt.Errorf("%w: %s.%s is declared but not available in this version of Trellis", ErrNotImplemented, el.FullName, method)
	}
	bound, err := BindArgs(*spec, args)
	if err != nil {
		return nil, err
	}
	inv.Args = bound
	return m(ctx, env, inv)
}
