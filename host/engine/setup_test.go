package engine_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/bus/localbus"
	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/execlog"
	"github.com/trellis-run/trellis/host/internal/parttest"
	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

// The engine tests run a real engine on embedded backends: a localbus, and the execution log of
// parttest (a localstore behind a writer) in t.TempDir(), with the in-process sandbox loaded with
// a small app written to disk and loaded the way every command loads one. They wait on what the
// engine does — every log row it writes passes through the log's sink, which signals the test, and
// handlers can call the probe — never on sleeps.

// machine is the HostName every engine of these tests runs under.
const machine = "testmachine"

// bundle is one test's event center and what it runs on.
type bundle struct {
	t     testing.TB
	ctx   context.Context
	eng   *engine.Engine
	bus   *localbus.Bus
	log   *parttest.Log
	rec   *execlog.Recorder
	probe *parttest.Probe
	snap  atomic.Pointer[registry.Snapshot]
	// mainVM is the sandbox of the bundle's own engine.
	mainVM *jsvm.VM
	// instance is the engine's InstanceID.
	instance string
}

// setup starts an engine on app (app.json is added when missing). Options set by opts override
// the bundle's; the engine stops when the test ends.
func setup(t testing.TB, app map[string]string, opts ...func(*engine.Options)) *bundle {
	t.Helper()
	b := newBundle(t, app)
	b.eng = b.newEngine(b.instance, opts...)
	return b
}

// newBundle opens the backends and the sandbox without an engine.
func newBundle(t testing.TB, app map[string]string) *bundle {
	t.Helper()
	b := &bundle{t: t, ctx: context.Background(), instance: vocab.NewID("inst_"), probe: parttest.NewProbe("handler")}
	b.snap.Store(loadApp(t, app))
	var err error
	b.bus, err = localbus.Open(filepath.Join(t.TempDir(), "bus"), localbus.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.bus.Close() })
	b.log = parttest.OpenLog(t)
	b.rec = b.log.Recorder(machine, b.instance)
	return b
}

// newEngine starts one more engine, as instance, on the bundle's bus, store and app: two engines
// of one bundle are two hosts of a cluster. It has a sandbox and a recorder of its own.
func (b *bundle) newEngine(instance string, opts ...func(*engine.Options)) *engine.Engine {
	t := b.t
	t.Helper()
	vm := parttest.NewVM(t, b.probe, b.snap.Load())
	rec := b.rec
	if instance == b.instance {
		b.mainVM = vm
	} else {
		rec = b.log.Recorder(machine, instance)
	}
	o := engine.Options{
		Bus: b.bus, Executor: vm, Log: rec, Store: b.log.Store, Snapshot: b.snap.Load,
		HostName: machine, InstanceID: instance, LagEvery: -1,
	}
	for _, f := range opts {
		f(&o)
	}
	eng, err := engine.New(o)
	require.NoError(t, err)
	require.NoError(t, eng.Start(b.ctx))
	t.Cleanup(func() {
		b.probe.ReleaseAll() // handlers held at a gate must not hold Stop up
		ctx, cancel := context.WithTimeout(context.Background(), parttest.WaitLimit)
		defer cancel()
		require.NoError(t, eng.Stop(ctx))
	})
	return eng
}

// loadApp writes files as the app (app.json is added when missing) and loads it as the host does.
func loadApp(t testing.TB, files map[string]string) *registry.Snapshot {
	t.Helper()
	return parttest.LoadApp(t, "enginetest", files)
}

// awaitStage waits until node nodeID has a row of stage with attempt (0: any) and returns the
// node's rows as the store orders them.
func (b *bundle) awaitStage(nodeID, stage string, attempt int) []logstore.Row {
	b.t.Helper()
	return b.log.AwaitStage(b.t, nodeID, stage, attempt)
}

// attempts is every state of the node in the store, oldest first.
func (b *bundle) attempts(nodeID string) []logstore.Row {
	b.t.Helper()
	return b.log.Attempts(b.t, nodeID)
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
	require.NoError(b.t, b.log.Writer.Flush(b.ctx))
}
