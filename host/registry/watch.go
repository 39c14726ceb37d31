package registry

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Debounce is how long the watcher waits after the last file event before reloading, so an
// editor's burst of writes (or a git checkout) becomes one reload.
const Debounce = 30 * time.Millisecond

// maxDelay caps how long a steady stream of events can postpone a reload.
const maxDelay = 500 * time.Millisecond

// Watcher keeps a Snapshot current while the app's files change. A changed element is re-read
// and revalidated; unchanged ones are reused. An edit that breaks an element never replaces
// its last good version: the snapshot keeps serving that and lists the problem in
// Snapshot.Problems until the files are fixed.
type Watcher struct {
	opts     Options
	onReload func(*Snapshot)

	cur atomic.Pointer[Snapshot]

	mu      sync.Mutex // serializes reloads; held while onReload runs
	sc      *scanner
	version uint64

	life    sync.Mutex // guards the fields below
	state   int
	fsw     *fsnotify.Watcher
	roots   []string
	stop    chan struct{}
	done    chan struct{}
	dirtyMu sync.Mutex
	dirty   map[string]bool
}

const (
	stateNew = iota
	stateRunning
	stateStopped
)

// NewWatcher makes a watcher for the app; onReload (may be nil) is called with every new
// snapshot, one call at a time, only when something changed. onReload must not call Reload.
func NewWatcher(opts Options, onReload func(*Snapshot)) *Watcher {
	return &Watcher{opts: opts, onReload: onReload, sc: newScanner(), dirty: map[string]bool{}}
}

// Start loads the app and starts watching it. Like Load, it fails with a *ValidationError
// listing every problem when the app is invalid at start: there is no last good version yet
// to fall back to (with Options.Degraded, only a problem of the app itself fails it; broken
// elements are left out until they are fixed). Calling Start on a running watcher does nothing.
func (w *Watcher) Start(ctx context.Context) error {
	w.life.Lock()
	defer w.life.Unlock()
	switch w.state {
	case stateRunning:
		return nil
	case stateStopped:
		return ErrStopped
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("registry: start watching: %w", err)
	}
	w.mu.Lock()
	snap, problems := loadFirst(w.sc, w.opts)
	if len(problems) > 0 {
		w.mu.Unlock()
		_ = fsw.Close()
		return &ValidationError{Problems: problems}
	}
	w.version++
	snap.Version = w.version
	w.fsw = fsw
	w.syncRoots(snap)
	w.cur.Store(snap) // last: Reload works from here on, and finds fsw set
	w.mu.Unlock()
	w.stop = make(chan struct{})
	w.done = make(chan struct{})
	w.state = stateRunning
	go w.loop(fsw, w.stop, w.done)
	return nil
}

// Stop stops watching and waits for a reload in progress to finish (or ctx to end). The last
// snapshot stays readable with Current. Calling Stop twice, or before Start, is safe.
func (w *Watcher) Stop(ctx context.Context) error {
	w.life.Lock()
	if w.state != stateRunning {
		w.state = stateStopped
		w.life.Unlock()
		return nil
	}
	w.state = stateStopped
	close(w.stop)
	done, fsw := w.done, w.fsw
	w.life.Unlock()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if cerr := closeDraining(fsw); cerr != nil && err == nil {
		err = fmt.Errorf("registry: stop watching: %w", cerr)
	}
	return err
}

// closeDraining closes fsw while reading what it still sends. fsnotify's reader goroutine sends
// an error (a queue overflow, a watched directory gone) holding a lock that Close needs: with the
// watch loop gone and nobody reading, Close waited for ever (a host's Stop hung in CI).
func closeDraining(fsw *fsnotify.Watcher) error {
	closed := make(chan struct{})
	go func() {
		events, errs := fsw.Events, fsw.Errors
		for events != nil || errs != nil {
			select {
			case _, ok := <-events:
				if !ok {
					events = nil
				}
			case _, ok := <-errs:
				if !ok {
					errs = nil
				}
			case <-closed:
				return
			}
		}
	}()
	err := fsw.Close()
	close(closed)
	return err
}

// Current returns the snapshot being served (nil before a successful Start).
func (w *Watcher) Current() *Snapshot { return w.cur.Load() }

// Reload re-reads the app now instead of waiting for file events, and returns the snapshot
// then current. Use it after writing element files (the editor's save) to see the result, with
// any problems in Snapshot.Problems, without racing the debounce.
func (w *Watcher) Reload(ctx context.Context) (*Snapshot, error) {
	if w.Current() == nil {
		return nil, ErrNotStarted
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w.dirtyMu.Lock()
	dirty := w.dirty
	w.dirty = map[string]bool{}
	w.dirtyMu.Unlock()
	return w.reloadWith(dirty), nil
}

func (w *Watcher) reloadWith(dirty map[string]bool) *Snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	last := w.cur.Load()
	w.sc.dirty = dirty
	next := w.sc.reload(w.opts, last)
	w.sc.dirty = nil
	if sameSnapshot(last, next) {
		return last
	}
	w.version++
	next.Version = w.version
	w.cur.Store(next)
	w.syncRoots(next)
	if w.onReload != nil {
		w.onReload(next)
	}
	return next
}

// loop turns file events into debounced reloads.
func (w *Watcher) loop(fsw *fsnotify.Watcher, stop, done chan struct{}) {
	defer close(done)
	var (
		timer   *time.Timer
		timerC  <-chan time.Time
		pending time.Time
	)
	for {
		select {
		case <-stop:
			if timer != nil {
				timer.Stop()
			}
			return
		case ev, ok := <-fsw.Events:
			if !ok {
				return
			}
			if !w.relevant(ev) {
				continue
			}
			w.dirtyMu.Lock()
			w.dirty[ev.Name] = true
			w.dirtyMu.Unlock()
			if ev.Has(fsnotify.Create) {
				if info, err := os.Lstat(ev.Name); err == nil && info.IsDir() {
					w.addTree(fsw, ev.Name)
				}
			}
			now := time.Now()
			if timer == nil {
				pending = now
				timer = time.NewTimer(Debounce)
				timerC = timer.C
			} else if now.Sub(pending) < maxDelay {
				timer.Reset(Debounce)
			}
		case _, ok := <-fsw.Errors:
			if !ok {
				return
			}
			// An overflow lost events: reload everything soon; stat checks find the changes.
			if timer == nil {
				pending = time.Now()
				timer = time.NewTimer(Debounce)
				timerC = timer.C
			}
		case <-timerC:
			timer, timerC = nil, nil
			w.dirtyMu.Lock()
			dirty := w.dirty
			w.dirty = map[string]bool{}
			w.dirtyMu.Unlock()
			w.reloadWith(dirty)
		}
	}
}

// relevant filters out what cannot change the app: attribute changes and anything under a
// dot-directory (the host's .trellis data) or node_modules.
func (w *Watcher) relevant(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	for _, part := range strings.Split(filepath.ToSlash(ev.Name), "/") {
		if part == "node_modules" || (strings.HasPrefix(part, ".") && part != "." && part != "..") {
			return false
		}
	}
	return true
}

// syncRoots watches the app and every app it extends (which app.json can change).
func (w *Watcher) syncRoots(snap *Snapshot) {
	if w.fsw == nil {
		return
	}
	var roots []string
	for _, a := range snap.apps {
		roots = append(roots, a.root.osRoot)
	}
	if equalStrings(roots, w.roots) {
		return
	}
	for _, r := range roots {
		if !contains(w.roots, r) {
			w.addTree(w.fsw, r)
		}
	}
	for _, r := range w.roots {
		if !contains(roots, r) {
			_ = w.fsw.Remove(r)
		}
	}
	w.roots = roots
}

// addTree watches dir and its subdirectories (fsnotify is not recursive), skipping
// dot-directories and node_modules.
func (w *Watcher) addTree(fsw *fsnotify.Watcher, dir string) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if p != dir && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if err := fsw.Add(p); err != nil && !errors.Is(err, fsnotify.ErrClosed) {
			return nil
		}
		return nil
	})
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
