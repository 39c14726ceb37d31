package modelrt

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/trellis-run/trellis/host/models"
)

// ImportChunk is how many rows Import stores per transaction: big enough to be quick, small
// enough that a concurrent write waits for one chunk at most and that Emit starts early.
const ImportChunk = 1000

// afterStepTimeout bounds Emit and DateFields once a row is written. They run detached from the
// caller's cancellation: a caller that stops waiting must not leave a stored row without its
// event or date-field tasks.
const afterStepTimeout = 30 * time.Second

// Create stores a new row: Coerce (an "id" in row is ignored: the store assigns it),
// beforeSave(row, null), Insert, afterSave(row, null), the afterCreate event and the row's
// date-field tasks. It returns the row as stored.
//
// beforeSave may return an object: that object, checked again, is the row stored (fields it
// leaves out are stored as null); returning nothing keeps the row. If it throws, nothing is
// stored and its error comes back with code js_error.
func (r *Runtime) Create(ctx context.Context, model string, row map[string]any, c Caller) (map[string]any, error) {
	m, err := r.resolve(ctx, model)
	if err != nil {
		return nil, coded(err)
	}
	return r.create(ctx, m, row, c)
}

func (r *Runtime) create(ctx context.Context, m *model, row map[string]any, c Caller) (map[string]any, error) {
	if row == nil {
		return nil, coded(invalidArg("create %s needs a row object, got null", m.name))
	}
	in, err := models.Coerce(m.schema, row, m.loc, true)
	if err != nil {
		return nil, coded(fmt.Errorf("create %s: %w", m.name, err))
	}
	if in, err = r.beforeSave(ctx, m, in, nil, c); err != nil {
		return nil, coded(err)
	}
	stored, err := r.opts.Store.Insert(ctx, m.schema, in)
	if err != nil {
		return nil, coded(fmt.Errorf("create %s: %w", m.name, err))
	}
	return r.after(ctx, m, OpAfterCreate, nil, stored, c)
}

// Get returns row id as JavaScript sees it; models.ErrNotFound (code not_found) when there is
// none.
func (r *Runtime) Get(ctx context.Context, model string, id int64) (map[string]any, error) {
	m, err := r.resolve(ctx, model)
	if err != nil {
		return nil, coded(err)
	}
	if id <= 0 {
		return nil, coded(invalidArg("get %s needs an id greater than 0, got %d", model, id))
	}
	row, err := r.opts.Store.Get(ctx, m.schema, id)
	if err != nil {
		return nil, coded(fmt.Errorf("get %s row %d: %w", model, id, err))
	}
	return models.Present(m.schema, row, m.loc), nil
}

// Update changes the fields patch gives of row id: Get the row (not_found), lay the checked
// patch over it, beforeSave(row, prev), store the fields that differ from prev, afterSave(row,
// prev), the afterUpdate event (Changed lists the fields that changed) and the date-field tasks.
// It returns the row as stored.
//
// beforeSave may return an object: it is laid over the row it was given (fields it leaves out
// keep their values; give null to clear one); an "id" in it is ignored. An "id" in patch must
// be id itself: a row's id never changes.
func (r *Runtime) Update(ctx context.Context, model string, id int64, patch map[string]any, c Caller) (map[string]any, error) {
	m, err := r.resolve(ctx, model)
	if err != nil {
		return nil, coded(err)
	}
	return r.update(ctx, m, id, patch, c)
}

func (r *Runtime) update(ctx context.Context, m *model, id int64, patch map[string]any, c Caller) (map[string]any, error) {
	if id <= 0 {
		return nil, coded(invalidArg("update %s needs (id, patch): id must be greater than 0, got %d", m.name, id))
	}
	if patch == nil {
		return nil, coded(invalidArg("update %s needs (id, patch): patch must be an object, got null", m.name))
	}
	if v, ok := patch[models.IDField]; ok && v != nil {
		if pid, err := parseID(v); err != nil || pid != id {
			return nil, coded(invalidArg("update %s row %d: patch has id %s; a row's id cannot change (leave id out of the patch)", m.name, id, show(v)))
		}
	}
	p, err := models.Coerce(m.schema, patch, m.loc, true)
	if err != nil {
		return nil, coded(fmt.Errorf("update %s row %d: %w", m.name, id, err))
	}
	prev, err := r.opts.Store.Get(ctx, m.schema, id)
	if err != nil {
		return nil, coded(fmt.Errorf("update %s row %d: %w", m.name, id, err))
	}
	merged := make(models.Row, len(prev))
	for k, v := range prev {
		merged[k] = v
	}
	for k, v := range p {
		merged[k] = v
	}
	if merged, err = r.beforeSave(ctx, m, merged, prev, c); err != nil {
		return nil, coded(err)
	}
	// Only what differs goes to the store, so two updates of different fields of one row do not
	// undo each other.
	diff := models.Row{}
	for _, f := range m.schema.AllFields() {
		if v, ok := merged[f.Name]; ok && f.Name != models.IDField && !sameValue(v, prev[f.Name]) {
			diff[f.Name] = v
		}
	}
	before, after := prev, prev
	if len(diff) > 0 {
		if before, after, err = r.opts.Store.Update(ctx, m.schema, id, diff); err != nil {
			return nil, coded(fmt.Errorf("update %s row %d: %w", m.name, id, err))
		}
	}
	return r.after(ctx, m, OpAfterUpdate, before, after, c)
}

// Save updates the row when row has an id of an existing row, and creates a new row otherwise
// (an id of no existing row is then ignored: the store assigns ids, and never reuses one).
func (r *Runtime) Save(ctx context.Context, model string, row map[string]any, c Caller) (map[string]any, error) {
	m, err := r.resolve(ctx, model)
	if err != nil {
		return nil, coded(err)
	}
	if row == nil {
		return nil, coded(invalidArg("save %s needs a row object, got null", model))
	}
	v, ok := row[models.IDField]
	if !ok || v == nil {
		return r.create(ctx, m, row, c)
	}
	id, err := parseID(v)
	if err != nil {
		return nil, coded(invalidArg("save %s: %v", model, err))
	}
	switch _, err := r.opts.Store.Get(ctx, m.schema, id); {
	case err == nil:
		patch := make(map[string]any, len(row))
		for k, v := range row {
			if k != models.IDField {
				patch[k] = v
			}
		}
		return r.update(ctx, m, id, patch, c)
	case errors.Is(err, models.ErrNotFound):
		return r.create(ctx, m, row, c)
	default:
		return nil, coded(fmt.Errorf("save %s row %d: %w", model, id, err))
	}
}

// Delete removes row id, then runs afterDelete(prev), the afterDelete event and removes the row's
// date-field tasks. It returns the deleted row.
func (r *Runtime) Delete(ctx context.Context, model string, id int64, c Caller) (map[string]any, error) {
	m, err := r.resolve(ctx, model)
	if err != nil {
		return nil, coded(err)
	}
	if id <= 0 {
		return nil, coded(invalidArg("delete %s needs an id greater than 0, got %d", model, id))
	}
	prev, err := r.opts.Store.Delete(ctx, m.schema, id)
	if err != nil {
		return nil, coded(fmt.Errorf("delete %s row %d: %w", model, id, err))
	}
	return r.after(ctx, m, OpAfterDelete, prev, nil, c)
}

// Query returns one page of rows: {"totalCount": int64, "rowDatas": []any of rows}. q.Location
// is set to the app's timezone when nil.
func (r *Runtime) Query(ctx context.Context, model string, q models.Query) (map[string]any, error) {
	m, err := r.resolve(ctx, model)
	if err != nil {
		return nil, coded(err)
	}
	if q.Location == nil {
		q.Location = m.loc
	}
	page, err := r.opts.Store.Query(ctx, m.schema, q)
	if err != nil {
		return nil, coded(fmt.Errorf("query %s: %w", model, err))
	}
	rows := make([]any, len(page.Rows))
	for i, row := range page.Rows {
		rows[i] = models.Present(m.schema, row, m.loc)
	}
	return map[string]any{"totalCount": page.TotalCount, "rowDatas": rows}, nil
}

// Import stores many rows fast: every row is checked first (nothing is stored when one is bad),
// then they go to the store in transactions of ImportChunk rows. Rows keep an "id" they give.
// Bulk import bypasses lifecycle functions (no beforeSave or afterSave runs), but every row still
// gets its afterCreate event and its date-field tasks, sent after its chunk commits with no lock
// held. It returns how many rows were stored, also when it fails part way (earlier chunks stay
// stored; the error says how many).
func (r *Runtime) Import(ctx context.Context, model string, rows []map[string]any, c Caller) (int, error) {
	m, err := r.resolve(ctx, model)
	if err != nil {
		return 0, coded(err)
	}
	const maxReported = 20
	checked := make([]models.Row, len(rows))
	var errs []error
	for i, row := range rows {
		if row == nil {
			errs = append(errs, invalidArg("row %d is null; give an object", i))
		} else if checked[i], err = models.Coerce(m.schema, row, m.loc, false); err != nil {
			errs = append(errs, fmt.Errorf("row %d: %w", i, err))
		}
		if len(errs) == maxReported {
			errs = append(errs, fmt.Errorf("(stopped checking at row %d after %d bad rows)", i, maxReported))
			break
		}
	}
	if len(errs) > 0 {
		return 0, coded(fmt.Errorf("import into %s: nothing was stored: %w", model, errors.Join(errs...)))
	}
	n := 0
	for start := 0; start < len(checked); start += ImportChunk {
		chunk := checked[start:min(start+ImportChunk, len(checked))]
		stored, err := r.opts.Store.InsertMany(ctx, m.schema, chunk)
		if err != nil {
			return n, coded(fmt.Errorf("import into %s: rows %d to %d were not stored (%d rows before them were): %w", model, start, start+len(chunk)-1, n, err))
		}
		n += len(stored)
		for i, row := range stored {
			if err := r.announce(ctx, m, OpAfterCreate, nil, row, nil, present(m, row), c); err != nil {
				return n, coded(fmt.Errorf("import into %s: %d rows were stored, then row %d failed and later rows were not imported: %w", model, n, start+i, err))
			}
		}
	}
	return n, nil
}

// beforeSave runs the model's beforeSave(row, prev) and returns the row to store. prev is nil on
// create, where an object returned is the whole row; on update it is laid over row.
func (r *Runtime) beforeSave(ctx context.Context, m *model, row, prev models.Row, c Caller) (models.Row, error) {
	if r.opts.Lifecycle == nil || !m.code {
		return row, nil
	}
	var prevArg any
	if prev != nil {
		prevArg = models.Present(m.schema, prev, m.loc)
	}
	res, exported, err := r.opts.Lifecycle(ctx, m.name, FnBeforeSave, []any{models.Present(m.schema, row, m.loc), prevArg}, c)
	if err != nil {
		return nil, fmt.Errorf("%w; nothing was stored", lifecycleError(m.name, FnBeforeSave, err, ""))
	}
	if !exported || res == nil {
		return row, nil
	}
	obj, ok := res.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: %s of %s returned %s; return the row object, or nothing to keep the row as it is; nothing was stored", ErrLifecycle, FnBeforeSave, m.name, show(res))
	}
	repl, err := models.Coerce(m.schema, obj, m.loc, true)
	if err != nil {
		return nil, fmt.Errorf("%w: %s of %s returned a row that does not fit the model; nothing was stored: %w", ErrLifecycle, FnBeforeSave, m.name, err)
	}
	if prev == nil {
		return repl, nil
	}
	for k, v := range repl {
		row[k] = v
	}
	return row, nil
}

// after runs what follows a write: afterSave or afterDelete, then announce. Every step runs even
// when an earlier one failed; the errors are joined, each wrapping ErrAfterWrite. It returns the
// row written (the deleted row for a delete), also with an error.
func (r *Runtime) after(ctx context.Context, m *model, op string, prev, post models.Row, c Caller) (map[string]any, error) {
	var errs []error
	prevP, postP := present(m, prev), present(m, post)
	if r.opts.Lifecycle != nil && m.code {
		fn, args := FnAfterSave, []any{postP, nilIfNone(prevP)}
		if op == OpAfterDelete {
			fn, args = FnAfterDelete, []any{prevP}
		}
		if _, _, err := r.opts.Lifecycle(ctx, m.name, fn, args, c); err != nil {
			note := fmt.Sprintf("row %d of %s was %s", rowID(prev, post), m.name, verb(op))
			errs = append(errs, fmt.Errorf("%w: %w", ErrAfterWrite, lifecycleError(m.name, fn, err, note)))
		}
	}
	if err := r.announce(ctx, m, op, prev, post, prevP, postP, c); err != nil {
		errs = append(errs, err)
	}
	out := postP
	if op == OpAfterDelete {
		out = prevP
	}
	return out, coded(errors.Join(errs...))
}

// announce emits the model event and keeps the date-field tasks in step, both detached from the
// caller's cancellation (see afterStepTimeout).
func (r *Runtime) announce(ctx context.Context, m *model, op string, prev, post models.Row, prevP, postP map[string]any, c Caller) error {
	if r.opts.Emit == nil && r.opts.DateFields == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), afterStepTimeout)
	defer cancel()
	id, done := rowID(prev, post), verb(op)
	var errs []error
	if r.opts.Emit != nil {
		ev := Event{Model: m.name, Operate: op, PostData: postP, PrevData: prevP, Changed: changed(m.schema, prev, post), Caller: c}
		if err := r.opts.Emit(ctx, ev); err != nil {
			errs = append(errs, fmt.Errorf("%w: row %d of %s was %s, but its %s event was not sent (listeners did not hear it): %w", ErrAfterWrite, id, m.name, done, op, err))
		}
	}
	if r.opts.DateFields != nil {
		if err := r.opts.DateFields(ctx, m.name, prevP, postP); err != nil {
			errs = append(errs, fmt.Errorf("%w: row %d of %s was %s, but its date-field tasks were not updated (services.TaskSvc saveDateFieldTask/deleteDateFieldTask redo it): %w", ErrAfterWrite, id, m.name, done, err))
		}
	}
	return errors.Join(errs...)
}

// present is models.Present, nil for no row.
func present(m *model, r models.Row) map[string]any {
	if r == nil {
		return nil
	}
	return models.Present(m.schema, r, m.loc)
}

// nilIfNone makes a missing row an untyped nil, which the sandbox turns into null (a nil map
// inside an interface might become {}).
func nilIfNone(row map[string]any) any {
	if row == nil {
		return nil
	}
	return row
}

func rowID(prev, post models.Row) any {
	if post != nil {
		return post[models.IDField]
	}
	if prev != nil {
		return prev[models.IDField]
	}
	return nil
}

func verb(op string) string {
	switch op {
	case OpAfterCreate:
		return "created"
	case OpAfterDelete:
		return "deleted"
	}
	return "updated"
}

// changed lists the fields whose stored value differs between prev and post, in schema order.
// With one side missing (create, delete) that is every field with a value.
func changed(s models.Schema, prev, post models.Row) []string {
	out := []string{}
	for _, f := range s.AllFields() {
		if !sameValue(prev[f.Name], post[f.Name]) {
			out = append(out, f.Name)
		}
	}
	return out
}

// sameValue compares two values of the stored value model: instants by Equal (a location or
// monotonic reading does not make a change), everything else deeply.
func sameValue(a, b any) bool {
	if ta, ok := a.(time.Time); ok {
		tb, ok := b.(time.Time)
		return ok && ta.Equal(tb)
	}
	return reflect.DeepEqual(a, b)
}
