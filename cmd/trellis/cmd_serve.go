package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/trellis-run/trellis/web"
)

func newServeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve --app DIR",
		Short: "Start a host: the app's code, the HTTP API and the web editor",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := configOf(cmd)
			if err != nil {
				return err
			}
			cfg.Watch, cfg.ServeEvents = true, true
			h, err := newHost(cmd, cfg)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if err := h.Start(ctx); err != nil {
				return err
			}
			defer func() {
				sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = h.Stop(sctx)
			}()
			token, generated, err := h.AdminToken()
			if err != nil {
				return err
			}
			deps := web.Deps{App: h, Calls: h, Events: h, Logs: h, Tasks: h.Tasks(), Models: h.Models(), Editor: h, Drafts: h, Signals: h}
			srv, err := web.New(deps, web.Options{Token: token, MaxBodyBytes: h.Config().MaxBodyBytes, MaxValueDepth: h.Config().Limits.MaxValueDepth})
			if err != nil {
				return err
			}
			if err := srv.Start(h.Config().Addr); err != nil {
				return fmt.Errorf("listen on %s: %w (pick another with --addr)", h.Config().Addr, err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "trellis %s serving app %q on http://%s (data in %s)\n", version, h.Snapshot().App.Name, srv.Addr(), h.Config().DataDir)
			if generated {
				fmt.Fprintf(out, "admin token (shown once, stored in %s/admin-token): %s\n", h.Config().DataDir, token)
			}
			<-ctx.Done()
			fmt.Fprintln(out, "trellis: stopping")
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return srv.Stop(sctx)
		},
	}
	addSettings(cmd, "app", "data", "addr", "redis", "clickhouse", "clickhouse-cluster", "db", "sandbox", "workers", "timeout", "memory-limit", "max-kwargs", "claim-timeout", "lag-every", "log-retention", "max-body", "config")
	addSettings(cmd, capSettings...)
	return cmd
}
