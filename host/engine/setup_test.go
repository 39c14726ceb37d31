package engine_test

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
	"github.com/trellis-run/trellis/host/bus/localbus"
	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/execlog"
	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
	"github.com/trellis-run/trellis/logstore/localstore"
	"github.com/trellis-run/trellis/logstore/writer"
)

// The engine tests run a real engine on embedded backends: a localbus and a localstore behind a
// writer, in t.TempDir(), and the in-process sandbox loaded with a small app written to disk and
// loaded through the registry the way every command loads one (host.RegistryOptions, host.SourceOf).
// They wait on what the engine does — every log row it writes passes through a sink that signals
// the test — never on sleeps.

// waitLimit bounds every wait; a healthy run takes milliseconds.
const waitLimit = 20 * time.Second

// machine is the HostName every engine of these tests runs under.
const machine = "testmachine"

// bundle is one test's event center and what it runs on.
type bundle struct {
	t      *testing.T
	ctx    context.Context
	eng    *engine.Engine
	bus    *localbus.Bus
	store  logstore.Store
	writer *writer.Writer
	sink   *sink
	rec    *execlog.Recorder
	probe  *probe
	snap   atomic.Pointer[registry.Snapshot]
	// mainVM is the sandbox of the bundle's own engine.
	mainVM *jsvm.VM
	// instance is the engine's InstanceID; appDir the app's files.
	instance, appDir string
}

// setup starts an engine on app (app.json is added when missing). Options set by opts override
// the bundle's; the engine stops when the test ends.
func setup(t *testing.T, app map[string]string, opts ...func(*engine.Options)) *bundle {
	t.Helper()
	b := newBundle(t, app)
	b.eng = b.newEngine(b.instance, opts...)
	return b
}

// newBundle opens the backends and the sandbox without an engine.
func newBundle(t *testing.T, app map[string]string) *bundle {
	t.Helper()
	ctx := context.Background()
	b := &bundle{t: t, ctx: ctx, instance: vocab.NewID("inst_"), probe: newProbe()}
	b.appDir = writeApp(t, app)
	b.snap.Store(loadApp(t, b.appDir))

	data := t.TempDir()
	var err error
	b.bus, err = localbus.Open(filepath.Join(data, "bus"), localbus.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.bus.Close() })
	b.store, err = localstore.Open(filepath.Join(data, "logs"), localstore.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.store.Close() })
	b.writer, err = writer.New(b.store, writer.Options{SpoolDir: filepath.Join(data, "spool"), FlushInterval: 20 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, b.writer.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		require.NoError(t, b.writer.Stop(ctx))
	})
	b.sink = newSink(b.writer)
	b.rec = execlog.NewRecorder(b.sink, execlog.HostLabel(machine, b.instance))
	return b
}

// newEngine starts one more engine, as instance, on the bundle's bus, store and app: two engines
// of one bundle are two hosts of a cluster. It has a sandbox and a recorder of its own.
func (b *bundle) newEngine(instance string, opts ...func(*engine.Options)) *engine.Engine {
	t := b.t
	t.Helper()
	vm, err := jsvm.New(jsvm.Options{Host: b.probe})
	require.NoError(t, err)
	t.Cleanup(func() { _ = vm.Close() })
	require.NoError(t, vm.Load(sourceOf(b.snap.Load())))
	if instance == b.instance {
		b.mainVM = vm
	}
	rec := b.rec
	if instance != b.instance {
		rec = execlog.NewRecorder(b.sink, execlog.HostLabel(machine, instance))
	}
	o := engine.Options{
		Bus: b.bus, Executor: vm, Log: rec, Store: b.store, Snapshot: b.snap.Load,
		HostName: machine, InstanceID: instance, LagEvery: -1,
	}
	for _, f := range opts {
		f(&o)
	}
	eng, err := engine.New(o)
	require.NoError(t, err)
	require.NoError(t, eng.Start(b.ctx))
	t.Cleanup(func() {
		b.probe.releaseAll() // handlers held at a gate must not hold Stop up
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		require.NoError(t, eng.Stop(ctx))
	})
	return eng
}

func writeApp(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if _, ok := files["app.json"]; !ok {
		files = mapsWith(files, "app.json", `{"name": "enginetest"}`)
	}
	for name, text := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	}
	return dir
}

func mapsWith(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for mk, mv := range m {
		out[mk] = mv
	}
	out[k] = v
	return out
}

func loadApp(t *testing.T, dir string) *registry.Snapshot {
	t.Helper()
	snap, err := registry.Load(host.RegistryOptions(dir))
	require.NoError(t, err)
	return snap
}

// sourceOf is what the host gives the sandbox, plus the test's probe element.
func sourceOf(s *registry.Snapshot) *jsvm.Source {
	src := host.SourceOf(s)
	src.Elements[probeElement] = &jsvm.Element{FullName: probeElement, Kind: jsvm.KindHost, Methods: []string{"gate", "hit"}}
	return src
}

// probeElement is a host element handlers call to tell the test they run, and to be held.
const probeElement = "services.Probe"

// probe serves services.Probe: hit(name) reports that a handler got there; gate(name) does the
// same and then holds the handler until the test opens the gate (or its execution ends).
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

// open lets every handler held at gate name go on, now and later.
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

func (p *probe) CallHost(ctx context.Context, call jsvm.HostCall) (any, error) {
	if call.FullName != probeElement {
		return nil, vocab.Errorf(vocab.CodeNotFound, "the engine tests serve no %s", call.FullName)
	}
	name := fmt.Sprint(call.Args...)
	select {
	case p.hits <- name:
	default: // nobody is listening for hits: do not hold the handler for it
	}
	if call.Method == "gate" {
		select {
		case <-p.gate(name):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return name, nil
}

// awaitHit waits until a handler called the probe with name.
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
			t.Fatalf("no handler reached the probe with %q", name)
		}
	}
}

// sink is the recorder's sink: rows go on to the writer (and so to the store the engine reads),
// and the test is told of every write.
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

// all is every row written so far, in the order the writes happened.
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
			t.Fatalf("timed out waiting for %s; rows so far:\n%s", what, describeRows(rows))
		}
	}
}

// awaitStage waits until node nodeID has a row of stage with attempt (0: any) and returns the
// node's rows as the store orders them.
func (b *bundle) awaitStage(nodeID, stage string, attempt int) []logstore.Row {
	b.t.Helper()
	b.sink.await(b.t, fmt.Sprintf("node %s to reach %s (attempt %d)", nodeID, stage, attempt), func(rows []logstore.Row) bool {
		for _, r := range rows {
			if r.NodeID == nodeID && r.Stage == stage && (attempt == 0 || r.Attempt == attempt) {
				return true
			}
		}
		return false
	})
	return b.attempts(nodeID)
}

// attempts is every state of the node in the store, oldest first.
func (b *bundle) attempts(nodeID string) []logstore.Row {
	b.t.Helper()
	require.NoError(b.t, b.writer.Flush(b.ctx))
	rows, err := b.store.Attempts(b.ctx, nodeID)
	require.NoError(b.t, err)
	return rows
}

// send sends an event and fails the test on an error.
func (b *bundle) send(sender string, kwargs map[string]any) engine.SendResult {
	b.t.Helper()
	res, err := b.eng.SendEvent(b.ctx, engine.SendRequest{Sender: sender, Kwargs: kwargs})
	require.NoError(b.t, err)
	return res
}

// nodeOf is the node res delivered to listener.
func nodeOf(t *testing.T, res engine.SendResult, listener string) string {
	t.Helper()
	i := slices.Index(res.Subscribers, listener)
	require.GreaterOrEqual(t, i, 0, "%s is not a subscriber of %v", listener, res.Subscribers)
	return res.NodeIDs[i]
}

// stages names each row as status/stage@attempt.
func stages(rows []logstore.Row) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = fmt.Sprintf("%s/%s@%d", r.Status, r.Stage, r.Attempt)
	}
	return out
}

func describeRows(rows []logstore.Row) string {
	var sb strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&sb, "  %s %s %s/%s@%d\n", r.FullName, r.NodeID, r.Status, r.Stage, r.Attempt)
	}
	return sb.String()
}

// vm is the sandbox of the bundle's own engine.
func (b *bundle) vm(t *testing.T) *jsvm.VM {
	t.Helper()
	require.NotNil(t, b.mainVM)
	return b.mainVM
}

// put writes a row straight to the log, as if some host had recorded it, and makes it queryable.
func (b *bundle) put(r logstore.Row) {
	b.t.Helper()
	require.NoError(b.t, b.rec.WriteErr(b.ctx, r))
	require.NoError(b.t, b.writer.Flush(b.ctx))
}
