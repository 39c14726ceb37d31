package tasks_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/execlog"
	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/tasks"
	"github.com/trellis-run/trellis/host/timers"
	"github.com/trellis-run/trellis/host/timers/localtimers"
	"github.com/trellis-run/trellis/host/timers/recurring/locallock"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
	"github.com/trellis-run/trellis/logstore/localstore"
	"github.com/trellis-run/trellis/logstore/writer"
)

// The task center tests run a real center on embedded backends in t.TempDir(): the localtimers
// task store, the locallock tick coordinator, a localstore log behind a writer, and the
// in-process sandbox loaded with a small app through the registry (host.RegistryOptions,
// host.SourceOf). They wait on what the center does — each log row it writes passes through a
// sink that signals the test, and task functions can call a probe — never on sleeps.

// waitLimit bounds every wait; a healthy run takes milliseconds (ticks: a second or two).
const waitLimit = 20 * time.Second

// bundle is one test's task center and what it runs on.
type bundle struct {
	t      *testing.T
	ctx    context.Context
	center *tasks.Center
	store  *localtimers.Store
	coord  *locallock.Coordinator
	logs   logstore.Store
	writer *writer.Writer
	sink   *sink
	rec    *execlog.Recorder
	probe  *probe
	vm     *jsvm.VM
	snap   atomic.Pointer[registry.Snapshot]
	loc    *time.Location
}

// setup starts a serving task center on app (app.json is added when missing); opts change its
// Options before New. It stops when the test ends.
func setup(t *testing.T, app map[string]string, opts ...func(*tasks.Options)) *bundle {
	t.Helper()
	ctx := context.Background()
	b := &bundle{t: t, ctx: ctx, probe: newProbe()}
	snap := loadApp(t, app)
	b.snap.Store(snap)
	var err error
	b.loc, err = time.LoadLocation(snap.App.Timezone)
	require.NoError(t, err)

	data := t.TempDir()
	b.store, err = localtimers.Open(filepath.Join(data, "timers.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.store.Close() })
	b.coord, err = locallock.Open(filepath.Join(data, "ticks.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.coord.Close() })
	b.logs, err = localstore.Open(filepath.Join(data, "logs"), localstore.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.logs.Close() })
	b.writer, err = writer.New(b.logs, writer.Options{SpoolDir: filepath.Join(data, "spool"), FlushInterval: 20 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, b.writer.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		require.NoError(t, b.writer.Stop(ctx))
	})
	b.sink = newSink(b.writer)
	b.rec = execlog.NewRecorder(b.sink, execlog.HostLabel("testmachine", vocab.NewID("inst_")))

	b.vm, err = jsvm.New(jsvm.Options{Host: b.probe})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.vm.Close() })
	require.NoError(t, b.vm.Load(sourceOf(snap)))

	o := tasks.Options{
		Store: b.store, Executor: b.vm, Log: b.rec, Snapshot: b.snap.Load, Location: func() *time.Location { return b.loc },
		Coordinator: b.coord, Serve: true,
	}
	for _, f := range opts {
		f(&o)
	}
	b.center, err = tasks.New(o)
	require.NoError(t, err)
	require.NoError(t, b.center.Start(ctx))
	t.Cleanup(func() {
		b.probe.releaseAll()
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		require.NoError(t, b.center.Stop(ctx))
	})
	return b
}

// reload makes files the app's new version: the sandbox, the snapshot and the center follow.
func (b *bundle) reload(files map[string]string) {
	b.t.Helper()
	snap := loadApp(b.t, files)
	require.NoError(b.t, b.vm.Load(sourceOf(snap)))
	b.snap.Store(snap)
	require.NoError(b.t, b.center.Reload(b.ctx))
}

func loadApp(t *testing.T, files map[string]string) *registry.Snapshot {
	t.Helper()
	dir := t.TempDir()
	if _, ok := files["app.json"]; !ok {
		files = with(files, "app.json", `{"name": "taskstest"}`)
	}
	for name, text := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	}
	snap, err := registry.Load(host.RegistryOptions(dir))
	require.NoError(t, err)
	return snap
}

// with is files and one more.
func with(files map[string]string, name, text string) map[string]string {
	out := make(map[string]string, len(files)+1)
	for k, v := range files {
		out[k] = v
	}
	out[name] = text
	return out
}

// probeElement is a host element task functions call to tell the test they run, and to be held.
const probeElement = "services.Probe"

func sourceOf(s *registry.Snapshot) *jsvm.Source {
	src := host.SourceOf(s)
	src.Elements[probeElement] = &jsvm.Element{FullName: probeElement, Kind: jsvm.KindHost, Methods: []string{"gate", "hit"}}
	return src
}

// probe serves services.Probe: hit(name) reports that a function got there; gate(name) does the
// same and then holds the function until the test opens the gate or its run ends (then it
// reports "ended:"+name).
type probe struct {
	mu    sync.Mutex
	gates map[string]chan struct{}
	hits  chan string
}

func newProbe() *probe {
	return &probe{gates: map[string]chan struct{}{}, hits: make(chan string, 1024)}
}

func (p *probe) gate(name string) chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	g, ok := p.gates[name]
	if !ok {
		g = make(chan struct{})
		p.gates[name] = g
	}
	return g
}

func (p *probe) open(name string) {
	g := p.gate(name)
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-g:
	default:
		close(g)
	}
}

func (p *probe) releaseAll() {
	p.mu.Lock()
	names := make([]string, 0, len(p.gates))
	for n := range p.gates {
		names = append(names, n)
	}
	p.mu.Unlock()
	for _, n := range names {
		p.open(n)
	}
}

func (p *probe) report(name string) {
	select {
	case p.hits <- name:
	default: // nobody is listening: do not hold the function for it
	}
}

func (p *probe) CallHost(ctx context.Context, call jsvm.HostCall) (any, error) {
	if call.FullName != probeElement {
		return nil, vocab.Errorf(vocab.CodeNotFound, "the task tests serve no %s", call.FullName)
	}
	name := fmt.Sprint(call.Args...)
	p.report(name)
	if call.Method == "gate" {
		select {
		case <-p.gate(name):
		case <-ctx.Done():
			p.report("ended:" + name)
			return nil, ctx.Err()
		}
	}
	return name, nil
}

// awaitHit waits until a function called the probe with name.
func (p *probe) awaitHit(t *testing.T, name string) {
	t.Helper()
	timeout := time.After(waitLimit)
	for {
		select {
		case got := <-p.hits:
			if got == name {
				return
			}
		case <-timeout:
			t.Fatalf("no task function reached the probe with %q", name)
		}
	}
}

// sink passes rows on to the writer and tells the test of every write.
type sink struct {
	next    execlog.Sink
	mu      sync.Mutex
	rows    []logstore.Row
	changed chan struct{}
}

func newSink(next execlog.Sink) *sink { return &sink{next: next, changed: make(chan struct{})} }

func (s *sink) Write(ctx context.Context, rows ...logstore.Row) error {
	if err := s.next.Write(ctx, rows...); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rows = append(s.rows, rows...)
	close(s.changed)
	s.changed = make(chan struct{})
	return nil
}

func (s *sink) Flush(ctx context.Context) error { return s.next.Flush(ctx) }

// all is every row written so far.
func (s *sink) all() []logstore.Row {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.rows)
}

// await waits until cond holds over the rows written so far and returns them.
func (s *sink) await(t *testing.T, what string, cond func(rows []logstore.Row) bool) []logstore.Row {
	t.Helper()
	timeout := time.NewTimer(waitLimit)
	defer timeout.Stop()
	for {
		s.mu.Lock()
		rows, changed := slices.Clone(s.rows), s.changed
		s.mu.Unlock()
		if cond(rows) {
			return rows
		}
		select {
		case <-changed:
		case <-timeout.C:
			var sb strings.Builder
			for _, r := range rows {
				fmt.Fprintf(&sb, "  %s %s %s/%s@%d\n", r.FullName, r.NodeID, r.Status, r.Stage, r.Attempt)
			}
			t.Fatalf("timed out waiting for %s; rows so far:\n%s", what, sb.String())
		}
	}
}

// awaitStage waits until the task's node has a row of stage and returns the node's rows as the
// log store orders them.
func (b *bundle) awaitStage(taskID, stage string) []logstore.Row {
	b.t.Helper()
	b.sink.await(b.t, fmt.Sprintf("task %s to reach %s", taskID, stage), func(rows []logstore.Row) bool {
		for _, r := range rows {
			if r.NodeID == taskID && r.Stage == stage {
				return true
			}
		}
		return false
	})
	return b.rows(taskID)
}

// rows is every log row of the task's node, oldest first.
func (b *bundle) rows(taskID string) []logstore.Row {
	b.t.Helper()
	require.NoError(b.t, b.writer.Flush(b.ctx))
	rows, err := b.logs.Attempts(b.ctx, taskID)
	require.NoError(b.t, err)
	return rows
}

// awaitStatus waits until the task record has status and returns it. The record is the store's;
// the runner writes it right after the log row a test waits for, so this polls the store.
func (b *bundle) awaitStatus(taskID, status string) map[string]any {
	b.t.Helper()
	var rec map[string]any
	require.Eventually(b.t, func() bool {
		var err error
		rec, err = b.center.GetTask(b.ctx, taskID)
		require.NoError(b.t, err)
		return rec["status"] == status
	}, waitLimit, 5*time.Millisecond, "task %s never reached %s (last %v)", taskID, status, rec)
	return rec
}

// create makes a timer task of template calling funcName at start with args.
func (b *bundle) create(template, funcName string, start any, args map[string]any) map[string]any {
	b.t.Helper()
	rec, err := b.center.CreateTimerTask(b.ctx, tasks.CreateRequest{FullName: template, FuncName: funcName,
		TaskType: "tasks.NormalType", StartTime: start, ArgDict: args})
	require.NoError(b.t, err)
	return rec
}

// stages names each row as status/stage.
func stages(rows []logstore.Row) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.Status + "/" + r.Stage
	}
	return out
}

// listTasks answers ListTasks and fails the test on an error.
func (b *bundle) listTasks(q timers.ListQuery) (int64, []map[string]any) {
	b.t.Helper()
	page, err := b.center.ListTasks(b.ctx, q)
	require.NoError(b.t, err)
	var out []map[string]any
	for _, r := range page["rowDatas"].([]any) {
		out = append(out, r.(map[string]any))
	}
	return page["totalCount"].(int64), out
}
