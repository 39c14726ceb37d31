package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/spf13/cobra"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/backends"
	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/vocab"
)

func newCallCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "call --app DIR services.X.fn ['{json}']",
		Short: "Run one service function and print its result and log",
		Long: "Runs fn of service element services.X once. The JSON argument is the function's one\n" +
			"argument when it is an object, its positional arguments when it is an array.\n" +
			"The result goes to stdout as JSON; console output goes to stderr.",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := configOf(cmd)
			if err != nil {
				return err
			}
			dot := strings.LastIndex(args[0], ".")
			if dot <= 0 || dot == len(args[0])-1 {
				return fmt.Errorf("%q is not services.X.fn: give the service's fullName and the function, joined by a dot", args[0])
			}
			fullName, fn := args[0][:dot], args[0][dot+1:]
			var callArgs []any
			if len(args) == 2 {
				if callArgs, err = vocab.DecodeArgs([]byte(args[1])); err != nil {
					return err
				}
			}
			h, err := newHost(cmd, cfg)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			if err := h.Start(ctx); err != nil {
				return err
			}
			defer h.Stop(context.Background())
			res, err := h.CallService(ctx, fullName, fn, callArgs)
			for _, l := range res.Logs {
				fmt.Fprintf(cmd.ErrOrStderr(), "[%s] %s\n", l.Level, l.Message)
			}
			if err != nil {
				var je *jsvm.Error
				if errors.As(err, &je) {
					fmt.Fprintf(cmd.ErrOrStderr(), "error %s: %s\n", je.Code, je.Message)
					if je.Stack != "" {
						fmt.Fprintln(cmd.ErrOrStderr(), je.Stack)
					}
					return exitError{code: 1}
				}
				return err
			}
			out, err := json.MarshalIndent(res.Value, "", "  ")
			if err != nil {
				return fmt.Errorf("the result cannot be printed as JSON: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), string(out))
			return nil
		},
	}
	addSettings(cmd, "app", "data", "redis", "clickhouse", "clickhouse-cluster", "db", "sandbox", "workers", "timeout", "memory-limit", "max-kwargs", "config")
	addSettings(cmd, capSettings...)
	return cmd
}

// newHost loads the app into a host; an app with problems prints every one and exits 1.
func newHost(cmd *cobra.Command, cfg host.Config) (*host.Host, error) {
	h, err := host.New(cfg, backends.Open)
	if err != nil {
		return nil, reportLoadError(cmd, cfg.AppDir, err)
	}
	return h, nil
}

// reportLoadError prints every problem of an app that failed to load.
func reportLoadError(cmd *cobra.Command, appDir string, err error) error {
	var ve *registry.ValidationError
	if errors.As(err, &ve) {
		printProblems(cmd, appDir, ve.Problems)
		return exitError{code: 1}
	}
	return err
}
