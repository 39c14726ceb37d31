package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/trellis-run/trellis/host"
)

// setting is one configuration key: its flag, its environment variable and its trellis.yaml key.
type setting struct {
	flag, env, yaml, usage, def string
}

// settings lists every host setting. A flag given on the command line wins over the
// environment, which wins over trellis.yaml, which wins over the default.
var settings = []setting{
	{"app", "TRELLIS_APP", "app", "app directory (holds app.json)", ""},
	{"data", "TRELLIS_DATA", "data", "data directory for embedded storage (default APP/.trellis)", ""},
	{"addr", "TRELLIS_ADDR", "addr", "address of the HTTP API and editor", "127.0.0.1:8080"},
	{"redis", "TRELLIS_REDIS_URL", "redis", "Redis URL for events, timers and coordination (cluster mode)", ""},
	{"clickhouse", "TRELLIS_CLICKHOUSE_DSN", "clickhouse", "ClickHouse DSN for the execution log", ""},
	{"clickhouse-cluster", "TRELLIS_CLICKHOUSE_CLUSTER", "clickhouseCluster", "ClickHouse cluster name: log tables ON CLUSTER, Distributed over shards", ""},
	{"db", "TRELLIS_DB_DSN", "db", "PostgreSQL DSN for model data", ""},
	{"sandbox", "TRELLIS_SANDBOX", "sandbox", "how JavaScript runs: isolated (worker processes) or inprocess (trusted code only)", "isolated"},
	{"workers", "TRELLIS_WORKERS", "workers", "isolated worker processes (0 = one per CPU)", "0"},
	{"timeout", "TRELLIS_TIMEOUT", "timeout", "default time limit of one execution", "30s"},
	{"memory-limit", "TRELLIS_MEMORY_LIMIT_MB", "memoryLimitMB", "default memory limit of one execution, in MiB", "256"},
	{"claim-timeout", "TRELLIS_CLAIM_TIMEOUT", "claimTimeout", "how long a dead host's unfinished deliveries wait before another host takes them", "30s"},
	{"lag-every", "TRELLIS_LAG_EVERY", "lagEvery", "how often each listener's backlog is sampled into the execution log (0 = never)", "15s"},
	{"log-retention", "TRELLIS_LOG_RETENTION", "logRetention", "drop execution-log days older than this (e.g. 30d; 0 keeps everything)", "0"},
	{"max-kwargs", "TRELLIS_MAX_KWARGS_BYTES", "maxKwargsBytes", "largest JSON of an event's kwargs, in bytes", "1048576"},
	{"max-body", "TRELLIS_MAX_BODY_BYTES", "maxBodyBytes", "largest HTTP request body, in bytes", "4194304"},
	{"max-result", "TRELLIS_MAX_RESULT_BYTES", "maxResultBytes", "largest result of one execution, as JSON, in bytes (larger: result_too_large)", "1048576"},
	{"max-error", "TRELLIS_MAX_ERROR_BYTES", "maxErrorBytes", "largest error message, stack and details of one execution, each in bytes (cut past it)", "65536"},
	{"max-console", "TRELLIS_MAX_CONSOLE_BYTES", "maxConsoleBytes", "largest console output of one execution, in bytes (cut past it)", "262144"},
	{"max-depth", "TRELLIS_MAX_DEPTH", "maxDepth", "deepest nesting of arrays and objects in arguments, kwargs and results", "64"},
	{"max-message", "TRELLIS_MAX_MESSAGE_BYTES", "maxMessageBytes", "largest value JavaScript hands the host in one call (sendEvent kwargs, a model row), in bytes", "8388608"},
	{"log-format", "TRELLIS_LOG_FORMAT", "logFormat", "how serve writes its log lines (stderr): text or json", "text"},
	{"log-level", "TRELLIS_LOG_LEVEL", "logLevel", "the least important log lines serve writes: debug, info, warn or error", "info"},
	{"metrics-public", "TRELLIS_METRICS_PUBLIC", "metricsPublic", "let GET /metrics answer without the token (for a Prometheus that cannot send one)", "false"},
	{"shutdown-timeout", "TRELLIS_SHUTDOWN_TIMEOUT", "shutdownTimeout", "on SIGTERM, how long running executions may take to finish before they are cancelled", "30s"},
	{"config", "TRELLIS_CONFIG", "", "trellis.yaml to read (default ./trellis.yaml, then APP/trellis.yaml)", ""},
}

// capSettings are the size caps of one execution (jsvm.Limits), on every command that runs code.
var capSettings = []string{"max-result", "max-error", "max-console", "max-depth", "max-message"}

// addSettings declares the flags named in keys on cmd.
func addSettings(cmd *cobra.Command, keys ...string) {
	for _, k := range keys {
		for _, s := range settings {
			if s.flag == k {
				cmd.Flags().String(s.flag, s.def, s.usage+" [$"+s.env+"]")
			}
		}
	}
}

// resolve returns the value of every declared setting, by precedence flag > env > yaml > default.
func resolve(flags *pflag.FlagSet) (map[string]string, error) {
	vals := map[string]string{}
	get := func(name string) (string, bool) {
		f := flags.Lookup(name)
		if f == nil {
			return "", false
		}
		if f.Changed {
			return f.Value.String(), true
		}
		for _, s := range settings {
			if s.flag == name {
				if v, ok := os.LookupEnv(s.env); ok && v != "" {
					return v, true
				}
			}
		}
		return "", false
	}
	for _, s := range settings {
		if v, ok := get(s.flag); ok {
			vals[s.flag] = v
		}
	}
	yamlVals, err := readYAML(vals["config"], vals["app"])
	if err != nil {
		return nil, err
	}
	for _, s := range settings {
		if _, ok := vals[s.flag]; ok || flags.Lookup(s.flag) == nil {
			continue
		}
		if v, ok := yamlVals[s.yaml]; ok && s.yaml != "" {
			vals[s.flag] = fmt.Sprint(v)
			continue
		}
		vals[s.flag] = s.def
	}
	return vals, nil
}

func readYAML(path, app string) (map[string]any, error) {
	explicit := path != ""
	candidates := []string{path}
	if !explicit {
		candidates = []string{"trellis.yaml"}
		if app != "" {
			candidates = append(candidates, filepath.Join(app, "trellis.yaml"))
		}
	}
	for _, p := range candidates {
		b, err := os.ReadFile(p)
		if err != nil {
			if explicit {
				return nil, fmt.Errorf("read --config %s: %w", p, err)
			}
			continue
		}
		out := map[string]any{}
		if err := yaml.Unmarshal(b, &out); err != nil {
			return nil, fmt.Errorf("%s is not valid YAML: %w", p, err)
		}
		known := map[string]bool{}
		for _, s := range settings {
			known[s.yaml] = true
		}
		for k := range out {
			if !known[k] {
				return nil, fmt.Errorf("%s: unknown setting %q", p, k)
			}
		}
		return out, nil
	}
	return map[string]any{}, nil
}

// hostConfig builds a host.Config from resolved settings.
func hostConfig(vals map[string]string) (host.Config, error) {
	cfg := host.Config{
		AppDir: vals["app"], DataDir: vals["data"], Addr: vals["addr"],
		RedisURL: vals["redis"], ClickHouseDSN: vals["clickhouse"], DBDSN: vals["db"], ClickHouseCluster: vals["clickhouse-cluster"],
		Sandbox: vals["sandbox"], AdminToken: os.Getenv("TRELLIS_ADMIN_TOKEN"), Version: version,
	}
	if cfg.AppDir == "" {
		return cfg, fmt.Errorf("--app is required: the directory that holds app.json (or set TRELLIS_APP)")
	}
	var err error
	if v := vals["workers"]; v != "" {
		if cfg.Workers, err = strconv.Atoi(v); err != nil {
			return cfg, fmt.Errorf("--workers must be a whole number, got %q", v)
		}
	}
	if v := vals["timeout"]; v != "" {
		if cfg.Limits.Timeout, err = time.ParseDuration(v); err != nil {
			return cfg, fmt.Errorf("--timeout must be a duration such as 30s or 2m, got %q", v)
		}
	}
	if v := vals["memory-limit"]; v != "" {
		mb, err := strconv.ParseInt(v, 10, 64)
		if err != nil || mb <= 0 {
			return cfg, fmt.Errorf("--memory-limit must be a positive number of MiB, got %q", v)
		}
		cfg.Limits.MemoryBytes = mb << 20
	}
	if v := vals["claim-timeout"]; v != "" {
		if cfg.ClaimAfter, err = time.ParseDuration(v); err != nil {
			return cfg, fmt.Errorf("--claim-timeout must be a duration such as 30s, got %q", v)
		}
	}
	if v := vals["lag-every"]; v != "" {
		if cfg.LagEvery, err = time.ParseDuration(v); err != nil {
			return cfg, fmt.Errorf("--lag-every must be a duration such as 15s (0 = never), got %q", v)
		}
		if cfg.LagEvery == 0 {
			cfg.LagEvery = -1
		}
	}
	if v := vals["log-retention"]; v != "" && v != "0" {
		if cfg.LogRetention, err = parseDays(v); err != nil {
			return cfg, fmt.Errorf("--log-retention must be a duration such as 30d or 720h, got %q", v)
		}
	}
	if v := vals["max-kwargs"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return cfg, fmt.Errorf("--max-kwargs must be a positive number of bytes, got %q", v)
		}
		cfg.MaxKwargsBytes = n
	}
	for _, c := range []struct {
		flag string
		to   *int64
	}{
		{"max-result", &cfg.Limits.MaxResultBytes}, {"max-error", &cfg.Limits.MaxErrorBytes},
		{"max-console", &cfg.Limits.MaxConsoleBytes}, {"max-message", &cfg.Limits.MaxMessageBytes},
	} {
		if v := vals[c.flag]; v != "" {
			if *c.to, err = strconv.ParseInt(v, 10, 64); err != nil || *c.to <= 0 {
				return cfg, fmt.Errorf("--%s must be a positive number of bytes, got %q", c.flag, v)
			}
		}
	}
	if v := vals["max-depth"]; v != "" {
		if cfg.Limits.MaxValueDepth, err = strconv.Atoi(v); err != nil || cfg.Limits.MaxValueDepth <= 0 {
			return cfg, fmt.Errorf("--max-depth must be a positive whole number, got %q", v)
		}
	}
	if v := vals["max-body"]; v != "" {
		if cfg.MaxBodyBytes, err = strconv.ParseInt(v, 10, 64); err != nil || cfg.MaxBodyBytes <= 0 {
			return cfg, fmt.Errorf("--max-body must be a positive number of bytes, got %q", v)
		}
	}
	return cfg, nil
}

// configOf resolves the command's settings into a host.Config.
func configOf(cmd *cobra.Command) (host.Config, error) {
	vals, err := resolve(cmd.Flags())
	if err != nil {
		return host.Config{}, err
	}
	return hostConfig(vals)
}
