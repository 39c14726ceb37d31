package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-run/trellis/elements"
	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/isolate"
	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/modelrt"
	"github.com/trellis-run/trellis/host/models"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/services"
)

// Host is one running Trellis host. Create it with New, then Start; Stop is safe to call twice.
type Host struct {
	cfg     Config
	catalog *services.Catalog
	snap    atomic.Pointer[registry.Snapshot]

	mu      sync.Mutex // guards the fields below across Start and Stop
	exec    jsvm.Executor
	watcher *registry.Watcher
	started bool
	// reloadErr is the last error the executor gave when a reload was handed to it.
	reloadErr atomic.Pointer[error]
	log       atomic.Pointer[execLog]
	events    atomic.Pointer[eventCenter]
	tasks     atomic.Pointer[taskCenter]
	models    atomic.Pointer[modelrt.Runtime]
	// modelStore is closed by Stop (guarded by mu).
	modelStore models.Store
	loc        atomic.Pointer[time.Location]
}

// New loads and validates the app in cfg.AppDir. An app with any problem is refused as a whole
// (the error is a *registry.ValidationError listing every problem): nothing half-loaded runs.
func New(cfg Config) (*Host, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	snap, err := registry.Load(registryOptions(cfg))
	if err != nil {
		return nil, err
	}
	h := &Host{cfg: cfg, catalog: services.NewCatalog()}
	h.setSnapshot(snap)
	return h, nil
}

func registryOptions(cfg Config) registry.Options {
	return registry.Options{AppDir: cfg.AppDir, Builtins: elements.FS, Validators: map[string]func(*registry.Snapshot, *registry.Element) []registry.Problem{
		"events.Meta": engine.ValidateListener,
	}}
}

// Config returns the configuration the host runs with, defaults filled in.
func (h *Host) Config() Config { return h.cfg }

// Snapshot returns the app version new executions use.
func (h *Host) Snapshot() *registry.Snapshot { return h.snap.Load() }

// Start creates the data directory, starts the executor and, with cfg.Watch, hot reload.
func (h *Host) Start(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.started {
		return nil
	}
	if err := os.MkdirAll(h.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("host: create data directory %s: %w (set --data to a writable directory)", h.cfg.DataDir, err)
	}
	// The watcher loads the app again as it starts, so a change made since New is not missed;
	// the executor then gets that version.
	if h.cfg.Watch {
		w := registry.NewWatcher(registryOptions(h.cfg), h.applyReload)
		if err := w.Start(ctx); err != nil {
			return fmt.Errorf("host: watch %s for changes: %w", h.cfg.AppDir, err)
		}
		h.watcher = w
		h.setSnapshot(w.Current())
	}
	log, err := openExecLog(ctx, h.cfg)
	if err != nil {
		h.stopWatcher(ctx)
		return err
	}
	exec, err := h.newExecutor()
	if err == nil {
		if err = exec.Load(SourceOf(h.Snapshot())); err != nil {
			_ = exec.Close()
			err = fmt.Errorf("host: load app into the sandbox: %w", err)
		}
	}
	var ec *eventCenter
	if err == nil {
		if ec, err = h.openEventCenter(ctx, exec, log); err != nil {
			_ = exec.Close()
		}
	}
	var (
		tc         *taskCenter
		mrt        *modelrt.Runtime
		modelStore models.Store
	)
	if err == nil {
		label := engine.NewID("host_")
		if ec.engine != nil {
			label = ec.engine.Label()
		}
		if tc, err = h.openTaskCenter(ctx, exec, log, label); err != nil {
			_ = ec.close(ctx)
			_ = exec.Close()
		}
	}
	if err == nil {
		// Model writes keep date-field tasks in step through h.Tasks(): publish it first.
		h.tasks.Store(tc)
		if mrt, modelStore, err = h.openModels(ctx, exec); err != nil {
			h.tasks.Store(nil)
			_ = tc.close(ctx)
			_ = ec.close(ctx)
			_ = exec.Close()
		}
	}
	if err != nil {
		h.stopWatcher(ctx)
		_ = log.close(ctx)
		return err
	}
	h.exec = exec
	h.log.Store(log)
	h.events.Store(ec)
	h.models.Store(mrt)
	h.modelStore = modelStore
	h.started = true
	return nil
}

func (h *Host) newExecutor() (jsvm.Executor, error) {
	if h.cfg.Sandbox == SandboxInProcess {
		return jsvm.New(jsvm.Options{Host: h, Limits: h.cfg.Limits})
	}
	opts := isolate.Options{Host: h, Workers: h.cfg.Workers, Limits: h.cfg.Limits, Command: h.cfg.WorkerCommand}
	// A worker serves one app, so its local time can be the app's: JS Date's local-time methods
	// then agree with the datetimes Trellis returns.
	if tz := h.Snapshot().App.Timezone; tz != "" {
		opts.Env = append(opts.Env, "TZ="+tz)
	}
	return isolate.New(opts)
}

// applyReload makes a new app version current: the registry has already kept the last good
// version of every broken element, so what arrives here is always runnable.
func (h *Host) applyReload(s *registry.Snapshot) {
	h.setSnapshot(s)
	h.mu.Lock()
	exec := h.exec
	h.mu.Unlock()
	if exec == nil {
		return
	}
	if err := exec.Load(SourceOf(s)); err != nil {
		h.reloadErr.Store(&err)
		return
	}
	h.reloadErr.Store(nil)
	if ec := h.events.Load(); ec != nil && ec.engine != nil {
		if err := ec.engine.Reload(context.Background(), s); err != nil {
			h.reloadErr.Store(&err)
		}
	}
	if tc := h.tasks.Load(); tc != nil {
		if err := tc.center.Reload(context.Background()); err != nil {
			h.reloadErr.Store(&err)
		}
	}
	if mrt := h.models.Load(); mrt != nil {
		if err := mrt.Ensure(context.Background(), s); err != nil {
			h.reloadErr.Store(&err)
		}
	}
}

// Problems lists what the last reload could not apply: elements kept at their last good version
// and a sandbox that refused the new version.
func (h *Host) Problems() []registry.Problem {
	probs := append([]registry.Problem(nil), h.Snapshot().Problems...)
	if p := h.reloadErr.Load(); p != nil {
		probs = append(probs, registry.Problem{Code: "sandbox", Message: (*p).Error()})
	}
	return probs
}

// Stop stops hot reload and the executor. It is safe to call twice.
func (h *Host) Stop(ctx context.Context) error {
	h.mu.Lock()
	if !h.started {
		h.mu.Unlock()
		return nil
	}
	h.started = false
	watcher, exec, modelStore := h.watcher, h.exec, h.modelStore
	h.watcher, h.exec, h.modelStore = nil, nil, nil
	// Unlock first: a reload in progress calls applyReload, which takes h.mu, and the watcher's
	// Stop waits for it.
	h.mu.Unlock()
	var errs []error
	if watcher != nil {
		errs = append(errs, watcher.Stop(ctx))
	}
	h.models.Store(nil)
	if tc := h.tasks.Swap(nil); tc != nil {
		errs = append(errs, tc.close(ctx))
	}
	if ec := h.events.Swap(nil); ec != nil {
		errs = append(errs, ec.close(ctx))
	}
	if exec != nil {
		errs = append(errs, exec.Close())
	}
	if modelStore != nil {
		errs = append(errs, modelStore.Close())
	}
	if log := h.log.Swap(nil); log != nil {
		errs = append(errs, log.close(ctx))
	}
	return errors.Join(errs...)
}

func (h *Host) stopWatcher(ctx context.Context) {
	if h.watcher != nil {
		_ = h.watcher.Stop(ctx)
		h.watcher = nil
	}
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
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.exec == nil {
		return nil, ErrNotStarted
	}
	return h.exec, nil
}

// Version is the Trellis version this host reports.
func (h *Host) Version() string { return h.cfg.Version }

// Backends names the storage each part runs on: "embedded" (in the data directory) until an
// external server is configured.
func (h *Host) Backends() map[string]string {
	logs, bus := "embedded", "embedded"
	if h.cfg.ClickHouseDSN != "" {
		logs = "clickhouse"
	}
	if h.cfg.RedisURL != "" {
		bus = "redis"
	}
	db := "embedded"
	if h.cfg.DBDSN != "" {
		db = "postgres"
	}
	return map[string]string{"bus": bus, "logs": logs, "db": db, "sandbox": h.cfg.Sandbox}
}
