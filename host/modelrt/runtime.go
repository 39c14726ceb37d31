package modelrt

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/trellis-run/trellis/host/models"
	"github.com/trellis-run/trellis/host/registry"
)

// ModelMeta is the Meta every model element descends from; its instances are the models.
const ModelMeta = "models.Meta"

// Methods are the runtime object's methods, in the order the editor shows them.
var Methods = []string{"create", "get", "update", "save", "delete", "query"}

// Lifecycle function names a model's index.js may export.
const (
	FnBeforeSave  = "beforeSave"
	FnAfterSave   = "afterSave"
	FnAfterDelete = "afterDelete"
)

// Model event operations (events.ModelType's operate).
const (
	OpAfterCreate = "afterCreate"
	OpAfterUpdate = "afterUpdate"
	OpAfterDelete = "afterDelete"
)

// Caller is who made a call, so the model event joins the caller's request as a child of its
// node and the lifecycle functions run in the same request.
type Caller struct{ Element, RequestID, NodeID string }

// Event is one model write, for events.ModelType listeners.
type Event struct {
	// Model is the model's fullName; Operate one of afterCreate, afterUpdate, afterDelete.
	Model, Operate string
	// PostData and PrevData are the rows after and before the write as JavaScript sees them
	// (models.Present); nil for the side that does not exist (PrevData on create, PostData on
	// delete).
	PostData, PrevData map[string]any
	// Changed lists the fields whose value differs between prev and post, in the schema's field
	// order; on create and delete every field with a value. A listener's "fields" filter fires
	// only when one of its fields is here.
	Changed []string
	Caller  Caller
}

// Options wire a Runtime to its store and to the host's sandbox, event center and timers.
type Options struct {
	// Store keeps the rows. Required.
	Store models.Store
	// Snapshot returns the current app version: which models exist and their fields. Required.
	Snapshot func() *registry.Snapshot
	// Location is the app's timezone, for reading and writing datetimes; nil uses the
	// snapshot's app.json timezone (UTC when it has none).
	Location func() *time.Location
	// Lifecycle runs a lifecycle function of the model's index.js with args; exported=false (and
	// no error) when the model does not export fn. The host implements it with the sandbox. Nil
	// means no model has lifecycle functions.
	Lifecycle func(ctx context.Context, model, fn string, args []any, c Caller) (result any, exported bool, err error)
	// Emit sends the model event; an error is returned to the caller of the write AFTER the row
	// is stored (the write is not undone; the error says the row was saved but the event not
	// sent). Nil sends nothing.
	Emit func(ctx context.Context, ev Event) error
	// DateFields keeps the row's date-field tasks in step after a write (prev/post as
	// Present()ed; post nil on delete, prev nil on create). Same error rule as Emit. Nil does
	// nothing.
	DateFields func(ctx context.Context, model string, prev, post map[string]any) error
}

func (o Options) validate() error {
	var errs []error
	if o.Store == nil {
		errs = append(errs, errors.New("modelrt: Options.Store is nil; give the models.Store rows are kept in"))
	}
	if o.Snapshot == nil {
		errs = append(errs, errors.New("modelrt: Options.Snapshot is nil; give a function returning the current app version"))
	}
	return errors.Join(errs...)
}

// Runtime serves the models of the current app version. It holds no lock while it calls the
// store, the sandbox, Emit or DateFields, so slow steps of one write never hold up another.
// Safe for concurrent use.
type Runtime struct {
	opts Options

	mu      sync.Mutex
	entries map[*registry.Element]*entry // by element: a reload reuses unchanged ones
	zones   map[string]*time.Location    // by timezone name, when Options.Location is nil
}

// entry is what a model element gives: its schema, once checked, and whether its table is known
// to fit it.
type entry struct {
	schema    models.Schema
	schemaErr error

	mu        sync.Mutex // held only while ensuring the table
	ensured   bool
	ensureErr error // a schema problem found by the store; kept until the element changes
}

// New makes a Runtime. It touches no database: the host calls Ensure at start.
func New(o Options) (*Runtime, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	return &Runtime{opts: o, entries: map[*registry.Element]*entry{}, zones: map[string]*time.Location{}}, nil
}

// isModel reports whether el is a model instance (Types and the Meta have no rows).
func isModel(s *registry.Snapshot, el *registry.Element) bool {
	return el != nil && el.Layer == registry.LayerInstance && s.IsA(el.FullName, ModelMeta)
}

// Ensure creates/updates the tables of every models.Meta instance of the snapshot. Called by the
// host at start and after each reload; returns every problem joined, each naming the model.
// Models whose tables do not fit their declaration keep failing their calls with that problem
// until the declaration changes.
func (r *Runtime) Ensure(ctx context.Context, s *registry.Snapshot) error {
	if s == nil {
		return coded(invalidArg("Ensure needs an app snapshot"))
	}
	var errs []error
	live := map[*registry.Element]bool{}
	for _, el := range s.Sorted() {
		if !isModel(s, el) {
			continue
		}
		live[el] = true
		e := r.entryOf(el)
		if err := r.ensure(ctx, el.FullName, e); err != nil {
			errs = append(errs, err)
		}
	}
	// Forget elements no longer in the app, so reloads do not grow the cache.
	r.mu.Lock()
	for el := range r.entries {
		if !live[el] {
			delete(r.entries, el)
		}
	}
	r.mu.Unlock()
	return coded(errors.Join(errs...))
}

// entryOf returns the cached entry of el, computing its schema the first time.
func (r *Runtime) entryOf(el *registry.Element) *entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.entries[el]; e != nil {
		return e
	}
	e := &entry{}
	e.schema, e.schemaErr = models.SchemaOf(el.FullName, el.Definition)
	if e.schemaErr != nil {
		e.schemaErr = fmt.Errorf("modelrt: model %s: %w (fix its e.json \"fields\")", el.FullName, e.schemaErr)
	}
	r.entries[el] = e
	return e
}

// ensure makes sure the model's table fits its schema, once per element version. A schema
// problem is remembered (the table will not fit until the declaration changes); an unavailable
// database is tried again on the next call.
func (r *Runtime) ensure(ctx context.Context, model string, e *entry) error {
	if e.schemaErr != nil {
		return e.schemaErr
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ensured {
		return e.ensureErr
	}
	err := r.opts.Store.Ensure(ctx, e.schema)
	if err == nil {
		e.ensured = true
		return nil
	}
	err = fmt.Errorf("modelrt: model %s: %w", model, err)
	if errors.Is(err, models.ErrSchema) {
		err = fmt.Errorf("%w; until then its rows cannot be read or written", err)
		e.ensured, e.ensureErr = true, err
	}
	return err
}

// Schema of a model in the current snapshot; ErrUnknownModel when it is not a model instance.
func (r *Runtime) Schema(model string) (models.Schema, error) {
	_, el, err := r.lookup(model)
	if err != nil {
		return models.Schema{}, coded(err)
	}
	e := r.entryOf(el)
	if e.schemaErr != nil {
		return models.Schema{}, coded(e.schemaErr)
	}
	return e.schema, nil
}

// lookup finds the model element in the current snapshot.
func (r *Runtime) lookup(model string) (*registry.Snapshot, *registry.Element, error) {
	s := r.opts.Snapshot()
	if s == nil {
		return nil, nil, fmt.Errorf("%w: no app is loaded yet; try again once the host has started", models.ErrUnavailable)
	}
	el := s.Elements[model]
	if isModel(s, el) {
		return s, el, nil
	}
	if el != nil {
		return nil, nil, fmt.Errorf("%w: %s is not a model instance (its type is %q); give the fullName of an element whose type is models.NormalType", ErrUnknownModel, model, el.Type)
	}
	return nil, nil, fmt.Errorf("%w: no model %q in the app%s", ErrUnknownModel, model, modelHint(s))
}

// modelHint lists the app's models for an unknown-model message.
func modelHint(s *registry.Snapshot) string {
	var names []string
	for _, el := range s.Sorted() {
		if isModel(s, el) {
			names = append(names, el.FullName)
		}
	}
	switch {
	case len(names) == 0:
		return "; the app has no models: add one under models/ with type models.NormalType"
	case len(names) > 20:
		names = append(names[:20], "...")
	}
	sort.Strings(names)
	return "; its models are " + strings.Join(names, ", ")
}

// model is everything a call needs about one model, resolved against the current snapshot.
type model struct {
	name   string
	schema models.Schema
	loc    *time.Location
	// code is false when the element has no entry file: no lifecycle function can exist, so
	// the sandbox is not asked.
	code bool
}

// resolve finds the model, its schema and timezone, and makes sure its table fits.
func (r *Runtime) resolve(ctx context.Context, name string) (*model, error) {
	s, el, err := r.lookup(name)
	if err != nil {
		return nil, err
	}
	e := r.entryOf(el)
	if err := r.ensure(ctx, name, e); err != nil {
		return nil, err
	}
	return &model{name: name, schema: e.schema, loc: r.location(s), code: el.Files[el.Entry] != ""}, nil
}

// location is the app's timezone.
func (r *Runtime) location(s *registry.Snapshot) *time.Location {
	if r.opts.Location != nil {
		if loc := r.opts.Location(); loc != nil {
			return loc
		}
		return time.UTC
	}
	name := s.App.Timezone
	if name == "" {
		return time.UTC
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if loc := r.zones[name]; loc != nil {
		return loc
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		loc = time.UTC // the registry refuses an invalid timezone, so this is not reached
	}
	r.zones[name] = loc
	return loc
}
