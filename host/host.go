package host

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-run/trellis/elements"
	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/execlog"
	"github.com/trellis-run/trellis/host/isolate"
	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/modelrt"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/services"
	"github.com/trellis-run/trellis/host/signals"
	"github.com/trellis-run/trellis/host/tasks"
	"github.com/trellis-run/trellis/host/vocab"
)

// Host is one running Trellis host. Create it with New, then Start; Stop is safe to call twice.
type Host struct {
	cfg     Config
	open    OpenBackends
	catalog *services.Catalog
	snap    atomic.Pointer[registry.Snapshot]
	loc     atomic.Pointer[time.Location]
	// machine and instance name this process: broadcastIdentifier "host" and "instance", and
	// the label of every log row it writes (execlog.HostLabel).
	machine, instance string

	mu      sync.Mutex // guards started and parts across Start and Stop
	started bool
	parts   []part

	// What the parts publish as they start, read without the lock by calls in flight; nil
	// before Start and after Stop.
	backends atomic.Pointer[Backends]
	log      atomic.Pointer[execLog]
	rec      atomic.Pointer[execlog.Recorder]
	exec     atomic.Pointer[jsvm.Executor]
	events   atomic.Pointer[engine.Engine]
	tasks    atomic.Pointer[tasks.Center]
	models   atomic.Pointer[modelrt.Runtime]
	signals  atomic.Pointer[signals.Center]
	// reloadErr is the last error a part gave when a reload was handed to it.
	reloadErr atomic.Pointer[error]
	// watcher is hot reload while it runs: a save from the editor asks it to reload at once
	// (edit.go). editMu makes one edit at a time read, check and write an element directory.
	watcher atomic.Pointer[registry.Watcher]
	editMu  sync.Mutex
}

// New loads and validates the app in cfg.AppDir. An app with any problem is refused as a whole
// (the error is a *registry.ValidationError listing every problem): nothing half-loaded runs —
// except with cfg.Watch (serve), where the elements that have problems are left out and listed
// in Problems (health says degraded) until a fix is saved, so that one bad element cannot keep
// every other from running; a problem of app.json itself still refuses the app.
// open opens the backends at Start (cmd/trellis passes backends.Open).
func New(cfg Config, open OpenBackends) (*Host, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if open == nil {
		return nil, fmt.Errorf("%w: New needs an OpenBackends (backends.Open opens what the Config names)", ErrInvalidConfig)
	}
	ropts := RegistryOptions(cfg.AppDir)
	ropts.Degraded = cfg.Watch
	snap, err := registry.Load(ropts)
	if err != nil {
		return nil, err
	}
	h := &Host{cfg: cfg, open: open, catalog: services.NewCatalog(), machine: machineName(), instance: vocab.NewID("inst_")}
	h.setSnapshot(snap)
	return h, nil
}

// RegistryOptions are how every command loads an app: the built-in elements, and the checks of
// the parts that read element fields the registry's schema cannot judge alone (a listener's
// retry policy and handler, a task template's cron).
func RegistryOptions(appDir string) registry.Options {
	return registry.Options{AppDir: appDir, Builtins: elements.FS, Validators: map[string]func(*registry.Snapshot, *registry.Element) []registry.Problem{
		"events.Meta":       engine.ValidateListener,
		"tasks.Meta":        tasks.ValidateTemplate,
		signals.MetaSignals: signals.ValidateReceiver,
	}}
}

func machineName() string {
	name, err := os.Hostname()
	if err != nil || name == "" {
		return "localhost"
	}
	return name
}

// Config returns the configuration the host runs with, defaults filled in.
func (h *Host) Config() Config { return h.cfg }

// Snapshot returns the app version new executions use.
func (h *Host) Snapshot() *registry.Snapshot { return h.snap.Load() }

// Start opens the backends and starts every part in order: the execution log, the sandbox,
// signals, the event center, the task center, model storage, and (with cfg.Watch) hot reload. A part that
// fails to start stops those before it.
func (h *Host) Start(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.started {
		return nil
	}
	if err := os.MkdirAll(h.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("host: create data directory %s: %w (set --data to a writable directory)", h.cfg.DataDir, err)
	}
	parts := []part{h.backendsPart(), h.logPart(), h.executorPart(), h.signalsPart(), h.eventsPart(), h.tasksPart(), h.modelsPart(), h.servePart(), h.memoryPart()}
	if h.cfg.Watch {
		parts = append(parts, h.watchPart())
	}
	started, err := startParts(ctx, parts)
	if err != nil {
		return err
	}
	h.parts, h.started = started, true
	return nil
}

// Stop stops every part in reverse order, then closes the backends. It is safe to call twice.
func (h *Host) Stop(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.started {
		return nil
	}
	h.started = false
	parts := h.parts
	h.parts = nil
	return stopParts(ctx, parts)
}

func (h *Host) backendsPart() part {
	return part{name: "backends",
		start: func(ctx context.Context) error {
			b, err := h.open(ctx, h.cfg, h.Snapshot().App.Name)
			if err != nil {
				return err
			}
			h.backends.Store(b)
			return nil
		},
		stop: func(context.Context) error {
			if b := h.backends.Swap(nil); b != nil {
				return b.Close()
			}
			return nil
		}}
}

func (h *Host) executorPart() part {
	return part{name: "the sandbox",
		start: func(context.Context) error {
			exec, err := h.newExecutor()
			if err != nil {
				return err
			}
			if err := exec.Load(SourceOf(h.Snapshot())); err != nil {
				_ = exec.Close()
				return fmt.Errorf("load the app: %w", err)
			}
			h.exec.Store(&exec)
			return nil
		},
		stop: func(context.Context) error {
			if p := h.exec.Swap(nil); p != nil {
				return (*p).Close()
			}
			return nil
		}}
}

func (h *Host) newExecutor() (jsvm.Executor, error) {
	if h.cfg.Sandbox == SandboxInProcess {
		return jsvm.New(jsvm.Options{Host: h, Limits: h.cfg.Limits})
	}
	opts := isolate.Options{Host: h, Workers: h.cfg.Workers, Limits: h.cfg.Limits, Command: h.cfg.WorkerCommand, OnWorkerExit: h.workerExited}
	// A worker serves one app, so its local time can be the app's: JS Date's local-time methods
	// then agree with the datetimes Trellis returns.
	if tz := h.Snapshot().App.Timezone; tz != "" {
		opts.Env = append(opts.Env, "TZ="+tz)
	}
	return isolate.New(opts)
}

// watchPart is hot reload. It starts last, so every part is there to take a new version; it
// loads the app once more as it starts, so a change made since New is not missed.
func (h *Host) watchPart() part {
	var w *registry.Watcher
	return part{name: "hot reload",
		start: func(ctx context.Context) error {
			ropts := RegistryOptions(h.cfg.AppDir)
			ropts.Degraded = true
			w = registry.NewWatcher(ropts, h.applyReload)
			if err := w.Start(ctx); err != nil {
				return fmt.Errorf("watch %s for changes: %w", h.cfg.AppDir, err)
			}
			// The watcher loaded the app again; only a change since New is worth recompiling.
			if cur := w.Current(); !cur.SameFiles(h.Snapshot()) {
				h.applyReload(cur)
			}
			h.watcher.Store(w)
			return nil
		},
		stop: func(ctx context.Context) error {
			h.watcher.Store(nil)
			return w.Stop(ctx)
		}}
}

// applyReload makes a new app version current: the registry has already kept the last good
// version of every broken element, so what arrives here is always runnable.
func (h *Host) applyReload(s *registry.Snapshot) {
	h.setSnapshot(s)
	exec, err := h.executor()
	if err != nil {
		return
	}
	defer h.logReload(s)
	if err := exec.Load(SourceOf(s)); err != nil {
		h.reloadErr.Store(&err)
		return
	}
	h.reloadErr.Store(nil)
	ctx := context.Background()
	if e := h.events.Load(); e != nil {
		if err := e.Reload(ctx, s); err != nil {
			h.reloadErr.Store(&err)
		}
	}
	if tc := h.tasks.Load(); tc != nil {
		if err := tc.Reload(ctx); err != nil {
			h.reloadErr.Store(&err)
		}
	}
	if mrt := h.models.Load(); mrt != nil {
		if err := mrt.Ensure(ctx, s); err != nil {
			h.reloadErr.Store(&err)
		}
	}
}

// Problems lists what the last reload could not apply: elements kept at their last good version
// and a part that refused the new version.
func (h *Host) Problems() []registry.Problem {
	probs := append([]registry.Problem(nil), h.Snapshot().Problems...)
	if p := h.reloadErr.Load(); p != nil {
		probs = append(probs, registry.Problem{Code: "sandbox", Message: (*p).Error()})
	}
	return probs
}

// setSnapshot makes s current, with the timezone its app.json names (the registry has
// validated it, so loading cannot fail but for a missing zone database: then UTC).
func (h *Host) setSnapshot(s *registry.Snapshot) {
	loc := time.UTC
	if tz := s.App.Timezone; tz != "" {
		if l, err := time.LoadLocation(tz); err == nil {
			loc = l
		}
	}
	h.loc.Store(loc)
	h.snap.Store(s)
}

// Location is the app's timezone: "YYYY-MM-DD HH:mm:ss" datetimes are read and written in it.
func (h *Host) Location() *time.Location { return h.loc.Load() }

func (h *Host) executor() (jsvm.Executor, error) {
	if p := h.exec.Load(); p != nil {
		return *p, nil
	}
	return nil, ErrNotStarted
}

// Version is the Trellis version this host reports.
func (h *Host) Version() string { return h.cfg.Version }

// Backends names the storage each part runs on, for /api/health: "embedded" (in the data
// directory) until an external server is configured.
func (h *Host) Backends() map[string]string {
	out := map[string]string{"sandbox": h.cfg.Sandbox}
	if b := h.backends.Load(); b != nil {
		for k, v := range b.Names {
			out[k] = v
		}
	}
	return out
}
