package modelrt_test

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/elements"
	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/modelrt"
	"github.com/trellis-run/trellis/host/models"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/vocab"
)

// opener makes a fresh, empty store for one test.
type opener func(t testing.TB) models.Store

// testApp is the app every test runs: models.Order has every field type and lifecycle functions
// whose behaviour the row's title picks; models.Plain has none; services.Shop drives
// models.Plain from JavaScript through the runtime object.
var testApp = map[string]string{
	"app.json": `{"name": "shop", "timezone": "Asia/Shanghai"}`,
	"models/Order/e.json": `{"title": "Order", "type": "models.NormalType", "fields": [
		{"name": "title", "title": "Title", "type": "Stext"},
		{"name": "qty", "title": "Quantity", "type": "Integer"},
		{"name": "price", "type": "Numeric"},
		{"name": "paid", "type": "Boolean"},
		{"name": "dueDate", "type": "Datetime"},
		{"name": "day", "type": "Date"},
		{"name": "meta", "type": "JSON"},
		{"name": "note", "type": "Ltext"}]}`,
	"models/Order/index.js": `
exports.beforeSave = function (row, prev) {
  if (row.qty !== null && row.qty < 0) throw new Error("qty must not be negative");
  if (prev && row.note === "echo-prev") { row.note = "prev title " + prev.title; return row; }
  switch (row.title) {
  case "shout": row.title = "SHOUT"; return row;
  case "partial": return {note: "from beforeSave"};
  case "bad-return": return 42;
  case "bad-field": return {nope: 1};
  case "bad-type": return {qty: "many"};
  case "spin": for (;;) {}
  }
};
exports.afterSave = function (row, prev) {
  if (row.title === "after-fails") throw new Error("afterSave broke");
};
exports.afterDelete = function (prev) {
  if (prev.title === "undeletable") throw new Error("afterDelete broke");
};`,
	"models/Plain/e.json": `{"title": "Plain", "type": "models.NormalType", "fields": [
		{"name": "name", "type": "Stext"}, {"name": "n", "type": "Integer"}]}`,
	"services/Shop/e.json": `{"title": "Shop", "type": "services.NormalType"}`,
	"services/Shop/index.js": `
exports.run = function () {
  const m = app.getElement("models.Plain");
  const a = m.create({name: "a", n: 1});
  const got = m.get(a.id);
  const got2 = m.get({id: String(a.id)});
  const up = m.update(a.id, {n: 2});
  const up2 = m.update({id: a.id, patch: {n: 3}});
  const saved = m.save({id: a.id, name: "a2"});
  const q = m.query({filter: {n: {gte: 1}}, orderBy: "-id", page: 1, pageSize: 10});
  const q2 = m.query({n: 3}, "id", 1, 5);
  const del = m.delete({id: a.id});
  let missing = null;
  try { m.get(a.id); } catch (e) { missing = {code: e.code, message: e.message}; }
  return {a: a, got: got, got2: got2, up: up, up2: up2, saved: saved, q: q, q2: q2, del: del, missing: missing};
};
exports.fail = function (model, method, args) {
  try { app.getElement(model)[method].apply(null, args); return null; }
  catch (e) { return {code: e.code, message: e.message}; }
};`,
}

// lifeCall is one Lifecycle call the runtime made.
type lifeCall struct {
	Model, Fn string
	Args      []any
	Caller    modelrt.Caller
}

// dateCall is one DateFields call.
type dateCall struct {
	Model      string
	Prev, Post map[string]any
	CtxErr     error // the context's error when DateFields was called
}

// bundle is what setup gives a test.
type bundle struct {
	rt    *modelrt.Runtime
	store models.Store
	vm    *jsvm.VM
	snap  atomic.Pointer[registry.Snapshot]
	dir   string

	mu     sync.Mutex
	events []modelrt.Event
	dates  []dateCall
	life   []lifeCall
	// emitHook and dateHook, when set, run inside Emit and DateFields and give their error.
	emitHook func(modelrt.Event) error
	dateHook func(dateCall) error
}

// setup writes files (testApp when nil) as an app, loads it, opens a store, builds a sandbox
// with the app's JavaScript and a Runtime wired to both, and Ensures the tables.
func setup(t testing.TB, open opener, files map[string]string) *bundle {
	t.Helper()
	if files == nil {
		files = testApp
	}
	b := &bundle{store: open(t), dir: writeApp(t, files)}
	b.snap.Store(loadApp(t, b.dir))
	vm, err := jsvm.New(jsvm.Options{Host: jsvm.HostCallerFunc(func(ctx context.Context, call jsvm.HostCall) (any, error) {
		return b.rt.Call(ctx, call.FullName, call.Method, call.Args, modelrt.Caller{Element: call.Caller, RequestID: call.RequestID, NodeID: call.NodeID})
	})})
	require.NoError(t, err)
	t.Cleanup(func() { _ = vm.Close() })
	require.NoError(t, vm.Load(sourceOf(b.snap.Load())))
	b.vm = vm
	b.rt, err = modelrt.New(modelrt.Options{
		Store:      b.store,
		Snapshot:   b.snap.Load,
		Lifecycle:  b.lifecycle,
		Emit:       b.emit,
		DateFields: b.dateFields,
	})
	require.NoError(t, err)
	require.NoError(t, b.rt.Ensure(context.Background(), b.snap.Load()))
	return b
}

func writeApp(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	}
	return dir
}

func loadApp(t testing.TB, dir string) *registry.Snapshot {
	t.Helper()
	snap, err := registry.Load(registry.Options{AppDir: dir, Builtins: elements.FS})
	require.NoError(t, err)
	return snap
}

// lifecycleElement is the sandbox element holding a model's index.js: the model's own fullName
// is its runtime object (a host proxy), as the host will have it.
func lifecycleElement(model string) string { return "lifecycle:" + model }

// sourceOf is the sandbox source of the test app: models as host proxies with Methods (plus
// their index.js under lifecycleElement), services as JavaScript.
func sourceOf(s *registry.Snapshot) *jsvm.Source {
	src := &jsvm.Source{AppName: s.App.Name, Timezone: s.App.Timezone, Elements: map[string]*jsvm.Element{}}
	for name, el := range s.Elements {
		if el.Layer != registry.LayerInstance {
			continue
		}
		code := map[string]string{}
		for f, text := range el.Files {
			if filepath.Ext(f) == ".js" {
				code[f] = text
			}
		}
		switch {
		case s.IsA(name, modelrt.ModelMeta):
			src.Elements[name] = &jsvm.Element{FullName: name, Kind: jsvm.KindHost, Methods: modelrt.Methods}
			if len(code) > 0 {
				src.Elements[lifecycleElement(name)] = &jsvm.Element{FullName: lifecycleElement(name), Kind: jsvm.KindJS, Dir: el.Dir, Entry: el.Entry, Files: code,
					Timeout: time.Second}
			}
		case len(code) > 0:
			src.Elements[name] = &jsvm.Element{FullName: name, Kind: jsvm.KindJS, Dir: el.Dir, Entry: el.Entry, Files: code}
		}
	}
	return src
}

// lifecycle is Options.Lifecycle as the host implements it: a function the model's index.js
// does not export is not run.
func (b *bundle) lifecycle(ctx context.Context, model, fn string, args []any, c modelrt.Caller) (any, bool, error) {
	b.mu.Lock()
	b.life = append(b.life, lifeCall{Model: model, Fn: fn, Args: args, Caller: c})
	b.mu.Unlock()
	el := b.snap.Load().Elements[model]
	if el == nil || !el.HasExport(fn) {
		return nil, false, nil
	}
	res, err := b.vm.Execute(ctx, jsvm.Call{Element: lifecycleElement(model), Function: fn, Args: args, RequestID: c.RequestID, NodeID: c.NodeID})
	if err != nil {
		return nil, true, err
	}
	return res.Value, true, nil
}

func (b *bundle) emit(_ context.Context, ev modelrt.Event) error {
	b.mu.Lock()
	b.events = append(b.events, ev)
	hook := b.emitHook
	b.mu.Unlock()
	if hook != nil {
		return hook(ev)
	}
	return nil
}

func (b *bundle) dateFields(ctx context.Context, model string, prev, post map[string]any) error {
	d := dateCall{Model: model, Prev: maps.Clone(prev), Post: maps.Clone(post), CtxErr: ctx.Err()}
	b.mu.Lock()
	b.dates = append(b.dates, d)
	hook := b.dateHook
	b.mu.Unlock()
	if hook != nil {
		return hook(d)
	}
	return nil
}

func (b *bundle) setHooks(emit func(modelrt.Event) error, date func(dateCall) error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.emitHook, b.dateHook = emit, date
}

// take returns and forgets what was recorded so far.
func (b *bundle) take() ([]modelrt.Event, []dateCall, []lifeCall) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ev, d, l := b.events, b.dates, b.life
	b.events, b.dates, b.life = nil, nil, nil
	return ev, d, l
}

// lifeFns lists the lifecycle functions called, in order.
func lifeFns(calls []lifeCall) []string {
	out := []string{}
	for _, c := range calls {
		out = append(out, c.Fn)
	}
	return out
}

// count is how many rows model has.
func (b *bundle) count(t *testing.T, model string) int64 {
	t.Helper()
	res, err := b.rt.Query(context.Background(), model, models.Query{})
	require.NoError(t, err)
	return res["totalCount"].(int64)
}

// requireCode checks err's code (through vocab.CodedError, as the sandbox reads it) and that it
// wraps target.
func requireCode(t *testing.T, err error, code string, target error) {
	t.Helper()
	require.Error(t, err)
	var c vocab.CodedError
	require.True(t, errors.As(err, &c), "%T %v has no code", err, err)
	require.Equal(t, code, c.ErrorCode(), "error: %v", err)
	if target != nil {
		require.ErrorIs(t, err, target)
	}
}

// within bounds a test step that must not hang.
func within(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
