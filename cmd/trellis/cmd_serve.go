package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/metrics"
	"github.com/trellis-run/trellis/logstore/writer"
	"github.com/trellis-run/trellis/web"
)

// stopGrace is what a stopping host gets after the drain: to cancel what still runs, record it,
// and flush the log writer.
const stopGrace = 15 * time.Second

func newServeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve --app DIR",
		Short: "Start a host: the app's code, the HTTP API and the web editor",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			vals, err := resolve(cmd.Flags())
			if err != nil {
				return err
			}
			cfg, err := hostConfig(vals)
			if err != nil {
				return err
			}
			ops, err := operationsOf(vals)
			if err != nil {
				return err
			}
			logger := ops.logger(cmd.ErrOrStderr())
			// The host hands this logger to what it starts; parts it does not reach (the bus's
			// drivers) log through the process's default, which writes the same way.
			slog.SetDefault(logger)
			coll := metrics.New()
			cfg.Watch, cfg.ServeEvents = true, true
			cfg.Logger, cfg.Metrics = logger, coll
			h, err := newHost(cmd, cfg)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if err := h.Start(ctx); err != nil {
				return err
			}
			running := true
			defer func() {
				if running { // a failure below: stop without draining
					sctx, cancel := context.WithTimeout(context.Background(), stopGrace)
					defer cancel()
					_ = h.Stop(sctx)
				}
			}()
			coll.Watch(metrics.Sources{Lag: h.EventLag, Spool: func() (writer.Stats, bool) {
				if w := h.LogWriter(); w != nil {
					return w.Stats(), true
				}
				return writer.Stats{}, false
			}})
			token, generated, err := h.AdminToken()
			if err != nil {
				return err
			}
			deps := web.Deps{App: h, Calls: h, Events: h, Logs: h, Tasks: h.Tasks(), Models: h.Models(), Editor: h, Drafts: h, Signals: h}
			srv, err := web.New(deps, web.Options{Token: token, MaxBodyBytes: h.Config().MaxBodyBytes, MaxValueDepth: h.Config().Limits.MaxValueDepth,
				Metrics: coll.Registry(), MetricsPublic: ops.metricsPublic, Logger: logger})
			if err != nil {
				return err
			}
			if err := srv.Start(h.Config().Addr); err != nil {
				return fmt.Errorf("listen on %s: %w (pick another with --addr)", h.Config().Addr, err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "trellis %s serving app %q on http://%s (data in %s)\n", version, h.Snapshot().App.Name, srv.Addr(), h.Config().DataDir)
			if generated {
				// On stdout only, once: never in the log.
				fmt.Fprintf(out, "admin token (shown once, stored in %s/admin-token): %s\n", h.Config().DataDir, token)
			}
			logger.Info("serving", "app", h.Snapshot().App.Name, "addr", srv.Addr(), "version", version, "data", h.Config().DataDir,
				"backends", h.Backends())
			<-ctx.Done()
			stop() // a second signal ends the process at once
			fmt.Fprintln(out, "trellis: stopping")
			running = false
			shutdown(logger, srv, h, ops.shutdownTimeout)
			return nil
		},
	}
	addSettings(cmd, "app", "data", "addr", "redis", "clickhouse", "clickhouse-cluster", "db", "sandbox", "workers", "timeout", "memory-limit", "max-kwargs", "claim-timeout", "lag-every", "log-retention", "max-body", "config")
	addSettings(cmd, capSettings...)
	addSettings(cmd, "log-format", "log-level", "metrics-public", "shutdown-timeout")
	cmd.Flags().Lookup("metrics-public").NoOptDefVal = "true" // --metrics-public alone means true
	return cmd
}

// shutdown is serve's graceful stop (SIGTERM, Ctrl-C): the HTTP server and the host take no new
// work, and the requests and executions under way get until bound to finish; then the host stops
// — cancelling what still runs, whose deliveries and tasks stay pending for another host — and
// flushes the log writer, within stopGrace. Whatever the outcome, serve then exits 0: nothing
// acknowledged is lost, and what did not finish runs again elsewhere.
func shutdown(logger *slog.Logger, srv *web.Server, h *host.Host, bound time.Duration) {
	start := time.Now()
	logger.Info("stopping: taking no new work; waiting for running executions", "timeout", bound.String())
	dctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	var wg sync.WaitGroup
	var srvErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		srvErr = srv.Stop(dctx)
	}()
	drainErr := h.Drain(dctx)
	wg.Wait()
	if drainErr != nil {
		logger.Warn("stopping: executions still running at --shutdown-timeout are cancelled; their deliveries and tasks stay pending for another host",
			"err", drainErr)
	}
	if srvErr != nil {
		logger.Warn("stopping: HTTP requests still running at --shutdown-timeout are cut off", "err", srvErr)
	}
	sctx, cancel2 := context.WithTimeout(context.Background(), stopGrace)
	defer cancel2()
	if err := h.Stop(sctx); err != nil {
		logger.Error("stopping: the host did not stop cleanly", "err", err)
	}
	logger.Info("stopped", "took", time.Since(start).Round(time.Millisecond).String())
}

// operations are serve's settings beside host.Config: its log, metrics and shutdown.
type operations struct {
	logFormat       string
	logLevel        slog.Level
	metricsPublic   bool
	shutdownTimeout time.Duration
}

func operationsOf(vals map[string]string) (operations, error) {
	var o operations
	switch f := strings.ToLower(vals["log-format"]); f {
	case "text", "json":
		o.logFormat = f
	default:
		return o, fmt.Errorf("--log-format must be text or json, got %q", vals["log-format"])
	}
	if err := o.logLevel.UnmarshalText([]byte(vals["log-level"])); err != nil {
		return o, fmt.Errorf("--log-level must be debug, info, warn or error, got %q", vals["log-level"])
	}
	var err error
	if o.metricsPublic, err = strconv.ParseBool(vals["metrics-public"]); err != nil {
		return o, fmt.Errorf("--metrics-public must be true or false, got %q", vals["metrics-public"])
	}
	if o.shutdownTimeout, err = time.ParseDuration(vals["shutdown-timeout"]); err != nil || o.shutdownTimeout <= 0 {
		return o, fmt.Errorf("--shutdown-timeout must be a positive duration such as 30s, got %q", vals["shutdown-timeout"])
	}
	return o, nil
}

// logger is serve's one logger: every line of the host, its parts and the HTTP server.
func (o operations) logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: o.logLevel}
	if o.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
