package tasks_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/execlog"
	"github.com/trellis-run/trellis/host/internal/parttest"
	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/tasks"
	"github.com/trellis-run/trellis/host/timers"
	"github.com/trellis-run/trellis/host/timers/localtimers"
	"github.com/trellis-run/trellis/host/timers/recurring/locallock"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

// The task center tests run a real center on embedded backends in t.TempDir(): the localtimers
// task store, the locallock tick coordinator, the execution log of parttest (a localstore behind
// a writer), and the in-process sandbox loaded with a small app the way the host loads one. They
// wait on what the center does — each log row it writes passes through the log's sink, which
// signals the test, and task functions can call the probe — never on sleeps.

// bundle is one test's task center and what it runs on.
type bundle struct {
	t      *testing.T
	ctx    context.Context
	center *tasks.Center
	store  *localtimers.Store
	coord  *locallock.Coordinator
	log    *parttest.Log
	rec    *execlog.Recorder
	probe  *parttest.Probe
	vm     *jsvm.VM
	snap   atomic.Pointer[registry.Snapshot]
	loc    *time.Location
	data   string        // the data directory: timers.db and ticks.db
	opts   tasks.Options // as the center was made (restart makes another alike)
}

// setup starts a serving task center on app (app.json is added when missing); opts change its
// Options before New. It stops when the test ends.
func setup(t *testing.T, app map[string]string, opts ...func(*tasks.Options)) *bundle {
	t.Helper()
	ctx := context.Background()
	b := &bundle{t: t, ctx: ctx, probe: parttest.NewProbe("task function")}
	snap := loadApp(t, app)
	b.snap.Store(snap)
	var err error
	b.loc, err = time.LoadLocation(snap.App.Timezone)
	require.NoError(t, err)

	data := t.TempDir()
	b.data = data
	b.store, err = localtimers.Open(filepath.Join(data, "timers.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.store.Close() })
	b.coord, err = locallock.Open(filepath.Join(data, "ticks.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.coord.Close() })
	b.log = parttest.OpenLog(t)
	b.rec = b.log.Recorder("testmachine", vocab.NewID("inst_"))
	b.vm = parttest.NewVM(t, b.probe, snap)

	o := tasks.Options{
		Store: b.store, Executor: b.vm, Log: b.rec, Snapshot: b.snap.Load, Location: func() *time.Location { return b.loc },
		Coordinator: b.coord, Serve: true,
	}
	for _, f := range opts {
		f(&o)
	}
	b.opts = o
	b.center, err = tasks.New(o)
	require.NoError(t, err)
	require.NoError(t, b.center.Start(ctx))
	t.Cleanup(func() {
		b.probe.ReleaseAll()
		ctx, cancel := context.WithTimeout(context.Background(), parttest.WaitLimit)
		defer cancel()
		require.NoError(t, b.center.Stop(ctx))
	})
	return b
}

// restart stops the center and starts another on a new handle of the same task file, as the
// host hostName would after a restart (the log, sandbox and tick coordinator stay). The old
// center's runs in flight are cut short (another host takes them over after the lease).
func (b *bundle) restart(hostName string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), parttest.WaitLimit)
	defer cancel()
	require.NoError(b.t, b.center.Stop(ctx))
	require.NoError(b.t, b.store.Close())
	store, err := localtimers.Open(filepath.Join(b.data, "timers.db"))
	require.NoError(b.t, err)
	b.store = store // the cleanup of setup closes it
	b.rec = b.log.Recorder(hostName, vocab.NewID("inst_"))
	o := b.opts
	o.Store, o.Log, o.Owner = store, b.rec, ""
	b.center, err = tasks.New(o) // the cleanup of setup stops it
	require.NoError(b.t, err)
	require.NoError(b.t, b.center.Start(b.ctx))
}

// reload makes files the app's new version: the sandbox, the snapshot and the center follow.
func (b *bundle) reload(files map[string]string) {
	b.t.Helper()
	snap := loadApp(b.t, files)
	require.NoError(b.t, b.vm.Load(parttest.SourceOf(snap)))
	b.snap.Store(snap)
	require.NoError(b.t, b.center.Reload(b.ctx))
}

// loadApp writes files as the app (app.json is added when missing) and loads it as the host does.
func loadApp(t *testing.T, files map[string]string) *registry.Snapshot {
	t.Helper()
	return parttest.LoadApp(t, "taskstest", files)
}

// awaitStage waits until the task's node has a row of stage and returns the node's rows as the
// log store orders them.
func (b *bundle) awaitStage(taskID, stage string) []logstore.Row {
	b.t.Helper()
	return b.log.AwaitStage(b.t, taskID, stage, 0)
}

// rows is every log row of the task's node, oldest first.
func (b *bundle) rows(taskID string) []logstore.Row {
	b.t.Helper()
	return b.log.Attempts(b.t, taskID)
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
	}, parttest.WaitLimit, 5*time.Millisecond, "task %s never reached %s (last %v)", taskID, status, rec)
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
