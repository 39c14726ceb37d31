package registry

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/stretchr/testify/require"
)

// watchBundle is a running watcher over a temp app, with its published snapshots on a channel.
type watchBundle struct {
	dir   string
	w     *Watcher
	snaps chan *Snapshot
}

func setupWatch(t *testing.T, files map[string]string) *watchBundle {
	t.Helper()
	b := &watchBundle{dir: newApp(t, files), snaps: make(chan *Snapshot, 64)}
	b.w = NewWatcher(opts(b.dir), func(s *Snapshot) { b.snaps <- s })
	require.NoError(t, b.w.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, b.w.Stop(context.Background())) })
	return b
}

// next waits for a published snapshot that satisfies ok. The deadline only bounds a failing
// test; a passing one returns as soon as the watcher publishes.
func (b *watchBundle) next(t *testing.T, what string, ok func(*Snapshot) bool) *Snapshot {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case s := <-b.snaps:
			if ok(s) {
				require.Same(t, s, b.w.Current())
				return s
			}
		case <-deadline:
			t.Fatalf("no snapshot with %s; current problems: %v", what, b.w.Current().Problems)
		}
	}
}

func (b *watchBundle) write(t *testing.T, files map[string]string) { writeFiles(t, b.dir, files) }

func TestWatchEditBreakFixAddDelete(t *testing.T) {
	t.Parallel()
	b := setupWatch(t, map[string]string{
		"services/A/e.json": serviceJSON, "services/A/index.js": serviceJS,
		"services/B/e.json": serviceJSON, "services/B/index.js": serviceJS,
	})
	first := b.w.Current()
	require.Equal(t, uint64(1), first.Version)

	// Edit: the new version is served; the untouched element is the same *Element.
	edited := "exports.backupDatabase = function () { return 2 }\nexports.restore = function () {}\n"
	b.write(t, map[string]string{"services/A/index.js": edited})
	s := b.next(t, "the edit", func(s *Snapshot) bool { return s.Elements["services.A"].Files["index.js"] == edited })
	require.Empty(t, s.Problems)
	require.Equal(t, []string{"backupDatabase", "restore"}, s.Elements["services.A"].Exports)
	require.Same(t, first.Elements["services.B"], s.Elements["services.B"])
	require.Same(t, first.Elements["events.Meta"], s.Elements["events.Meta"])
	require.Greater(t, s.Version, first.Version)
	good := s.Elements["services.A"]

	// Broken edit: the last good version is kept and the problem is reported with its position.
	b.write(t, map[string]string{"services/A/index.js": "exports.backupDatabase = function ( {\n"})
	s = b.next(t, "the problem", func(s *Snapshot) bool { return len(s.Problems) > 0 })
	require.Same(t, good, s.Elements["services.A"])
	require.Len(t, s.Problems, 1)
	require.Equal(t, "services/A/index.js:2:1: js_syntax", where(s.Problems[0]))

	// Fix: the problem is gone and the fix is served.
	fixed := "exports.backupDatabase = function () { return 3 }\n"
	b.write(t, map[string]string{"services/A/index.js": fixed})
	s = b.next(t, "the fix", func(s *Snapshot) bool { return len(s.Problems) == 0 })
	require.Equal(t, fixed, s.Elements["services.A"].Files["index.js"])

	// Add an element (new directories are watched too).
	b.write(t, map[string]string{"events/deep/OnX/index.js": eventJS})
	b.write(t, map[string]string{"events/deep/OnX/e.json": `{"type": "events.NormalType", "sender": "services.A"}`})
	s = b.next(t, "the new element", func(s *Snapshot) bool { return s.Elements["events.deep.OnX"] != nil })
	require.Empty(t, s.Problems)

	// Delete one.
	require.NoError(t, os.RemoveAll(filepath.Join(b.dir, "services/B")))
	s = b.next(t, "the deletion", func(s *Snapshot) bool { return s.Elements["services.B"] == nil })
	require.NotNil(t, s.Elements["services.A"])
	require.Empty(t, s.Problems)
}

// A new element that is broken has no last good version: it is left out and reported.
func TestWatchNewBrokenElement(t *testing.T) {
	t.Parallel()
	b := setupWatch(t, map[string]string{"services/A/e.json": serviceJSON, "services/A/index.js": serviceJS})
	b.write(t, map[string]string{"events/E/e.json": `{"type": "events.NormalType", "sender": "a", "timeout": "forever"}`, "events/E/index.js": eventJS})
	s := b.next(t, "the problem", func(s *Snapshot) bool { return len(s.Problems) > 0 })
	require.Nil(t, s.Elements["events.E"])
	require.Equal(t, []string{"events/E/e.json:1:57: bad_duration"}, []string{where(s.Problems[0])})
	require.NotNil(t, s.Elements["services.A"])
}

// Breaking an element that others depend on keeps its last good version, so they stay valid.
func TestWatchBrokenDependency(t *testing.T) {
	t.Parallel()
	b := setupWatch(t, map[string]string{
		"services/A/e.json": serviceJSON, "services/A/index.js": serviceJS,
		"tasks/T/e.json": `{"type": "tasks.NormalType", "repeatType": "interval", "interval": "1m", "funcName": "services.A.backupDatabase"}`,
	})
	first := b.w.Current()
	b.write(t, map[string]string{"services/A/e.json": `{"type": "services.NormalType", "title": 5}`})
	s := b.next(t, "the problem", func(s *Snapshot) bool { return len(s.Problems) > 0 })
	require.Same(t, first.Elements["services.A"], s.Elements["services.A"])
	require.Same(t, first.Elements["tasks.T"], s.Elements["tasks.T"])
	require.Len(t, s.Problems, 1)
	require.Equal(t, "services/A/e.json:1:42: wrong_type", where(s.Problems[0]))

	// A change that breaks the task's reference (removing the function) keeps the task's
	// last good version too... but that version references a function that is gone: the
	// snapshot serves the new service and reports the dangling reference.
	b.write(t, map[string]string{"services/A/e.json": serviceJSON, "services/A/index.js": "exports.other = function () {}\n"})
	s = b.next(t, "the dangling reference", func(s *Snapshot) bool {
		return len(s.Problems) == 1 && s.Problems[0].Element == "tasks.T"
	})
	require.Equal(t, []string{"other"}, s.Elements["services.A"].Exports)
	require.Same(t, first.Elements["tasks.T"], s.Elements["tasks.T"])
	require.Equal(t, CodeMissingFunction, s.Problems[0].Code)
}

// A broken app.json keeps the whole last good snapshot and reports the problem.
func TestWatchBrokenAppJSON(t *testing.T) {
	t.Parallel()
	b := setupWatch(t, map[string]string{"services/A/e.json": serviceJSON, "services/A/index.js": serviceJS})
	first := b.w.Current()
	b.write(t, map[string]string{"app.json": `{"name": "testapp",`, "services/A/index.js": "exports.changed = function () {}\n"})
	s := b.next(t, "the app.json problem", func(s *Snapshot) bool { return len(s.Problems) > 0 })
	require.Equal(t, "app.json:1:20: bad_json", where(s.Problems[0]))
	require.Same(t, first.Elements["services.A"], s.Elements["services.A"], "nothing is reloaded while app.json is broken")
	require.Equal(t, first.App, s.App)

	b.write(t, map[string]string{"app.json": `{"name": "renamed"}`})
	s = b.next(t, "the fix", func(s *Snapshot) bool { return len(s.Problems) == 0 })
	require.Equal(t, "renamed", s.App.Name)
	require.Equal(t, []string{"changed"}, s.Elements["services.A"].Exports)
}

// A bad extends entry on a hot reload keeps the whole last good snapshot, and its problem is
// listed with those of the elements on disk, as `trellis check` would list them.
func TestWatchBadExtends(t *testing.T) {
	t.Parallel()
	b := setupWatch(t, map[string]string{"services/A/e.json": serviceJSON, "services/A/index.js": serviceJS})
	first := b.w.Current()
	b.write(t, map[string]string{"app.json": `{"name": "testapp", "extends": ["../nope"]}`, "services/A/index.js": "exports.x = (\n"})
	s, err := b.w.Reload(context.Background())
	require.NoError(t, err)
	var got []string
	for _, p := range s.Problems {
		got = append(got, where(p))
	}
	require.Equal(t, []string{"app.json:1:33: bad_extends", "services/A/index.js:2:1: js_syntax"}, got, "%v", s.Problems)
	require.Same(t, first.Elements["services.A"], s.Elements["services.A"], "nothing is reloaded while extends is broken")
}

// A broken commons module keeps its last good source.
func TestWatchCommons(t *testing.T) {
	t.Parallel()
	b := setupWatch(t, map[string]string{
		"services/A/e.json": serviceJSON, "services/A/index.js": "require('commons/util')\n" + serviceJS,
		"commons/util.js": "exports.x = 1\n",
	})
	b.write(t, map[string]string{"commons/util.js": "exports.x = \n"})
	s := b.next(t, "the problem", func(s *Snapshot) bool { return len(s.Problems) > 0 })
	require.Equal(t, "exports.x = 1\n", s.Commons["commons/util.js"])
	require.Equal(t, "commons/util.js:2:1: js_syntax", where(s.Problems[0]))

	require.NoError(t, os.Remove(filepath.Join(b.dir, "commons/util.js")))
	s = b.next(t, "the dangling require", func(s *Snapshot) bool {
		return len(s.Problems) == 1 && s.Problems[0].Code == CodeBadRequire
	})
	require.NotContains(t, s.Commons, "commons/util.js")
	require.Equal(t, "services/A/index.js:1:9: bad_require", where(s.Problems[0]))
}

// Extended apps are watched too.
func TestWatchParentApp(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"app/app.json":             `{"name": "app", "extends": ["../base"]}`,
		"base/app.json":            `{"name": "base"}`,
		"base/services/P/e.json":   serviceJSON,
		"base/services/P/index.js": serviceJS,
	})
	snaps := make(chan *Snapshot, 16)
	w := NewWatcher(opts(filepath.Join(root, "app")), func(s *Snapshot) { snaps <- s })
	require.NoError(t, w.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, w.Stop(context.Background())) })
	writeFiles(t, root, map[string]string{"base/services/P/index.js": "exports.fromParent = function () {}\n"})
	b := &watchBundle{w: w, snaps: snaps}
	s := b.next(t, "the parent's edit", func(s *Snapshot) bool { return s.Elements["services.P"].HasExport("fromParent") })
	require.Equal(t, OriginParent, s.Elements["services.P"].Origin)
}

// Reload is synchronous; a reload that finds nothing new publishes nothing.
func TestWatchReloadAndNoopWrites(t *testing.T) {
	t.Parallel()
	dir := newApp(t, map[string]string{"services/A/e.json": serviceJSON, "services/A/index.js": serviceJS})
	var mu sync.Mutex
	calls := 0
	w := NewWatcher(opts(dir), func(*Snapshot) { mu.Lock(); calls++; mu.Unlock() })
	_, err := w.Reload(context.Background())
	require.ErrorIs(t, err, ErrNotStarted)
	require.NoError(t, w.Start(context.Background()))
	require.NoError(t, w.Start(context.Background()), "Start twice is harmless")
	first := w.Current()

	// Rewriting the same bytes (a new mtime) changes nothing.
	writeFiles(t, dir, map[string]string{"services/A/index.js": serviceJS})
	s, err := w.Reload(context.Background())
	require.NoError(t, err)
	require.Same(t, first, s)

	writeFiles(t, dir, map[string]string{"services/A/index.js": "exports.y = function () {}\n"})
	s, err = w.Reload(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"y"}, s.Elements["services.A"].Exports)
	require.Equal(t, first.Version+1, s.Version)
	require.NoError(t, w.Stop(context.Background()))
	require.NoError(t, w.Stop(context.Background()), "Stop twice is harmless")
	require.ErrorIs(t, w.Start(context.Background()), ErrStopped)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 1, calls, "only the real change was published (the watcher may have seen the same events, and found nothing new)")
	require.Same(t, s, w.Current(), "the last snapshot stays readable after Stop")
}

// Writes under .trellis (the host's data directory) never change the snapshot.
func TestWatchIgnoresDataDir(t *testing.T) {
	t.Parallel()
	b := setupWatch(t, map[string]string{"services/A/e.json": serviceJSON, "services/A/index.js": serviceJS})
	for i := 0; i < 5; i++ {
		b.write(t, map[string]string{".trellis/db/e.json": strings.Repeat("x", i), "node_modules/m/e.json": "x"})
	}
	// A real change afterwards is the first thing published.
	b.write(t, map[string]string{"services/A/index.js": "exports.z = function () {}\n"})
	s := b.next(t, "the change", func(*Snapshot) bool { return true })
	require.Equal(t, []string{"z"}, s.Elements["services.A"].Exports)
	require.Equal(t, uint64(2), s.Version)
	require.Empty(t, s.Problems)
}

func TestWatchEventFilter(t *testing.T) {
	t.Parallel()
	w := &Watcher{}
	for name, want := range map[string]bool{
		"/app/services/A/index.js":      true,
		"/app/.trellis/data.db":         false,
		"/app/.trellis":                 false,
		"/app/services/A/.index.js.swp": false,
		"/app/node_modules/x/e.json":    false,
		"/app/../base/services/e.json":  true,
	} {
		require.Equal(t, want, w.relevant(fsnotify.Event{Name: name, Op: fsnotify.Write}), name)
	}
	require.False(t, w.relevant(fsnotify.Event{Name: "/app/services/A/index.js", Op: fsnotify.Chmod}))
}

// Start on an invalid app fails with every problem, like Load.
func TestWatchStartInvalid(t *testing.T) {
	t.Parallel()
	w := NewWatcher(opts(newApp(t, map[string]string{"events/E/e.json": `{"type": "events.NormalType"}`})), nil)
	err := w.Start(context.Background())
	require.ErrorIs(t, err, ErrInvalid)
	require.Nil(t, w.Current())
	require.NoError(t, w.Stop(context.Background()))
}

// Hot reload refuses code the sandbox cannot compile, keeping the last good version: the issue's
// element passed hot reload and then kept the app from starting.
func TestWatchRefusesCodeTheSandboxCannotCompile(t *testing.T) {
	t.Parallel()
	b := setupWatch(t, map[string]string{"services/A/e.json": serviceJSON, "services/A/index.js": serviceJS})
	good := b.w.Current().Elements["services.A"]
	b.write(t, map[string]string{"services/A/index.js": "exports.f=function(){return " + strings.Repeat("!", 1_000_000) + "1};"})
	s := b.next(t, "the problem", func(s *Snapshot) bool { return len(s.Problems) > 0 })
	require.Same(t, good, s.Elements["services.A"])
	require.Len(t, s.Problems, 1)
	require.Equal(t, "services/A/index.js:1:1028: js_syntax", where(s.Problems[0]))
	require.Contains(t, s.Problems[0].Message, "nested more than 1000 levels")
}

// With Options.Degraded an app starts without its broken elements, which are listed as problems
// (the issue: one element kept the whole app from starting); fixing one brings it in. A broken
// app.json still refuses the app: there is nothing to run.
func TestDegradedStart(t *testing.T) {
	t.Parallel()
	dir := newApp(t, map[string]string{
		"services/A/e.json": serviceJSON, "services/A/index.js": serviceJS,
		"services/Bad/e.json": serviceJSON, "services/Bad/index.js": "exports.f=function(){return " + strings.Repeat("!", 100_000) + "1};",
	})
	o := opts(dir)
	_, err := Load(o)
	require.ErrorIs(t, err, ErrInvalid, "without Degraded the app is refused whole")
	o.Degraded = true
	s, err := Load(o)
	require.NoError(t, err)
	require.NotNil(t, s.Elements["services.A"])
	require.Nil(t, s.Elements["services.Bad"])
	require.Len(t, s.Problems, 1)
	require.Equal(t, "services/Bad/index.js:1:1028: js_syntax", where(s.Problems[0]))

	b := &watchBundle{dir: dir, snaps: make(chan *Snapshot, 64)}
	b.w = NewWatcher(o, func(s *Snapshot) { b.snaps <- s })
	require.NoError(t, b.w.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, b.w.Stop(context.Background())) })
	require.Nil(t, b.w.Current().Elements["services.Bad"])
	require.Len(t, b.w.Current().Problems, 1)
	b.write(t, map[string]string{"services/Bad/index.js": serviceJS})
	s = b.next(t, "the fix", func(s *Snapshot) bool { return s.Elements["services.Bad"] != nil })
	require.Empty(t, s.Problems)

	broken := newApp(t, map[string]string{"app.json": `{"name": `, "services/A/e.json": serviceJSON, "services/A/index.js": serviceJS})
	o = opts(broken)
	o.Degraded = true
	_, err = Load(o)
	require.ErrorIs(t, err, ErrInvalid, "a broken app.json refuses the app even degraded")
}
