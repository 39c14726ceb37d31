package host

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/metrics"
	"github.com/trellis-run/trellis/logstore"
)

// Sandbox names how JavaScript runs.
const (
	// SandboxIsolated runs JS in supervised worker processes with hard memory and time limits:
	// the default, and the only mode that holds against hostile code (docs/sandbox.md).
	SandboxIsolated = "isolated"
	// SandboxInProcess runs JS on goja runtimes inside the host: fastest, for trusted code only.
	SandboxInProcess = "inprocess"
)

// MaxValueDepthCeiling is the deepest nesting Limits.MaxValueDepth may allow: the sandbox
// refuses deeper values whatever the setting, so that no value can exhaust a Go stack.
const MaxValueDepthCeiling = 512

// Config is everything a host needs. Zero values take the defaults of WithDefaults; validate
// names the field that is wrong.
type Config struct {
	// AppDir is the app directory (holds app.json). Required.
	AppDir string
	// DataDir keeps all embedded state; default AppDir/.trellis.
	DataDir string
	// Addr is where `serve` listens; default 127.0.0.1:8080.
	Addr string
	// AdminToken is the bearer token of the HTTP API; empty = read or generate one in DataDir.
	AdminToken string
	// RedisURL, ClickHouseDSN and DBDSN move events/timers, the execution log and model data to
	// external servers. Empty = embedded storage in DataDir.
	RedisURL      string
	ClickHouseDSN string
	DBDSN         string
	// ClickHouseCluster names a cluster of the ClickHouse servers' remote_servers: the log's
	// tables are then created ON CLUSTER, as local tables on every shard under Distributed
	// tables that inserts and queries go through (docs/logstore.md).
	ClickHouseCluster string
	// Sandbox is SandboxIsolated (default) or SandboxInProcess.
	Sandbox string
	// Workers is the number of isolated worker processes; default the number of CPUs.
	Workers int
	// WorkerCommand starts a worker process; default this executable in worker mode.
	WorkerCommand []string
	// Limits are the default limits of one execution (timeout 30 s, memory 256 MiB) and its size
	// caps (jsvm.DefaultLimits: result 1 MiB, error 64 KiB, console 256 KiB, nesting 64, one value
	// handed to the host 8 MiB). MaxValueDepth also bounds what the host accepts before it
	// stores or sends a value: HTTP arguments, event kwargs.
	Limits jsvm.Limits
	// LogSpoolDir is where log rows wait, durably, before they reach the log store; default
	// DataDir/log-spool. One writer owns a spool at a time, so a short-lived process beside a
	// running host (trellis call) needs its own.
	LogSpoolDir string
	// LogRetention drops execution-log days older than this (0 = keep everything).
	LogRetention time.Duration
	// MaxBodyBytes caps HTTP request bodies; default 4 MiB.
	MaxBodyBytes int64
	// Watch turns on hot reload of the app directory.
	Watch bool
	// ServeEvents makes this host consume events and run listeners (serve); without it the host
	// only sends (trellis call).
	ServeEvents bool
	// ClaimAfter is how long a delivery may sit unacknowledged on a host that stopped
	// heartbeating (a dead host) before another host takes it over; default 30 s.
	ClaimAfter time.Duration
	// LagEvery is how often each listener's backlog is sampled into the execution log (rows of
	// kind lag, fullName "lag:<listener>"); default 15 s, negative turns it off.
	LagEvery time.Duration
	// MaxKwargsBytes caps the JSON size of an event's kwargs; default 1 MiB.
	MaxKwargsBytes int
	// Version is reported by /api/health.
	Version string
	// Logger receives the host's operational lines — hot reload results, handler failures,
	// dead letters, sandbox worker kills — and those of the parts it starts (the log writer);
	// default slog.Default().
	Logger *slog.Logger
	// Metrics, when set, counts what the host does (host/metrics: rows written, worker ends);
	// nil counts nothing.
	Metrics *metrics.Collector
	// ObserveRows, when set, is called with every batch of rows the host's parts hand the log
	// writer, once it has taken them: the rows as they were made, with their times to the
	// nanosecond (the store keeps milliseconds). `trellis bench events` measures latency with it.
	ObserveRows func(rows []logstore.Row)
}

// WithDefaults returns c with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.AppDir != "" {
		if abs, err := filepath.Abs(c.AppDir); err == nil {
			c.AppDir = abs
		}
	}
	if c.DataDir == "" && c.AppDir != "" {
		c.DataDir = filepath.Join(c.AppDir, ".trellis")
	}
	if c.LogSpoolDir == "" && c.DataDir != "" {
		c.LogSpoolDir = filepath.Join(c.DataDir, "log-spool")
	}
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8080"
	}
	if c.Sandbox == "" {
		c.Sandbox = SandboxIsolated
	}
	c.Limits = c.Limits.WithDefaults()
	if c.MaxKwargsBytes <= 0 {
		c.MaxKwargsBytes = 1 << 20
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 4 << 20
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.AppDir == "":
		return fmt.Errorf("%w: AppDir (--app) is required: the directory that holds app.json", ErrInvalidConfig)
	case c.Sandbox != SandboxIsolated && c.Sandbox != SandboxInProcess:
		return fmt.Errorf("%w: Sandbox (--sandbox) is %q; use %q or %q", ErrInvalidConfig, c.Sandbox, SandboxIsolated, SandboxInProcess)
	case c.Workers < 0:
		return fmt.Errorf("%w: Workers (--workers) must be 0 (one per CPU) or more, got %d", ErrInvalidConfig, c.Workers)
	case c.Limits.Timeout < time.Millisecond:
		return fmt.Errorf("%w: Limits.Timeout must be at least 1ms, got %s", ErrInvalidConfig, c.Limits.Timeout)
	case c.Limits.MemoryBytes < 16<<20:
		return fmt.Errorf("%w: Limits.MemoryBytes must be at least 16 MiB, got %d", ErrInvalidConfig, c.Limits.MemoryBytes)
	case c.Limits.MaxResultBytes < 1<<10:
		return fmt.Errorf("%w: Limits.MaxResultBytes (--max-result) must be at least 1024 bytes, got %d", ErrInvalidConfig, c.Limits.MaxResultBytes)
	case c.Limits.MaxErrorBytes < 1<<10:
		return fmt.Errorf("%w: Limits.MaxErrorBytes (--max-error) must be at least 1024 bytes, got %d", ErrInvalidConfig, c.Limits.MaxErrorBytes)
	case c.Limits.MaxConsoleBytes < 1<<10:
		return fmt.Errorf("%w: Limits.MaxConsoleBytes (--max-console) must be at least 1024 bytes, got %d", ErrInvalidConfig, c.Limits.MaxConsoleBytes)
	case c.Limits.MaxMessageBytes < 1<<10:
		return fmt.Errorf("%w: Limits.MaxMessageBytes (--max-message) must be at least 1024 bytes, got %d", ErrInvalidConfig, c.Limits.MaxMessageBytes)
	case c.Limits.MaxValueDepth < 1 || c.Limits.MaxValueDepth > MaxValueDepthCeiling:
		return fmt.Errorf("%w: Limits.MaxValueDepth (--max-depth) must be between 1 and %d, got %d", ErrInvalidConfig, MaxValueDepthCeiling, c.Limits.MaxValueDepth)
	case c.LagEvery > 0 && c.LagEvery < 100*time.Millisecond:
		return fmt.Errorf("%w: LagEvery (--lag-every) must be at least 100ms, got %s", ErrInvalidConfig, c.LagEvery)
	case c.ClaimAfter < 0 || (c.ClaimAfter > 0 && c.ClaimAfter < 100*time.Millisecond):
		return fmt.Errorf("%w: ClaimAfter (--claim-timeout) must be at least 100ms, got %s", ErrInvalidConfig, c.ClaimAfter)
	case c.ClickHouseCluster != "" && c.ClickHouseDSN == "":
		return fmt.Errorf("%w: ClickHouseCluster (--clickhouse-cluster) needs ClickHouseDSN (--clickhouse)", ErrInvalidConfig)
	case c.LogRetention < 0:
		return fmt.Errorf("%w: LogRetention (--log-retention) must be 0 (keep everything) or more, got %s", ErrInvalidConfig, c.LogRetention)
	case c.LogRetention > 0 && c.LogRetention < 24*time.Hour:
		return fmt.Errorf("%w: LogRetention (--log-retention) drops whole days, so it must be at least 24h (1d), got %s", ErrInvalidConfig, c.LogRetention)
	}
	if c.DBDSN != "" && !strings.HasPrefix(c.DBDSN, "postgres://") && !strings.HasPrefix(c.DBDSN, "postgresql://") {
		return fmt.Errorf("%w: DBDSN (--db) must be a PostgreSQL URL such as postgres://user:pass@host:5432/db, got %q", ErrInvalidConfig, c.DBDSN)
	}
	return nil
}
