package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/trellis-run/trellis/host/bench"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure a host end to end (figures for BENCHMARKS.md)",
	}
	cmd.AddCommand(newBenchEventsCmd())
	return cmd
}

func newBenchEventsCmd() *cobra.Command {
	var (
		o      bench.EventsOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "events [--redis URL] [--clickhouse DSN]",
		Short: "sendEvent → trivial JS handler → ack → log row: throughput, Redis commands per event, latency at an offered rate",
		Long: `Starts a host on a throwaway app (embedded storage unless --redis/--clickhouse are given),
sends --events events from --senders concurrent callers and waits until every one is handled and
its log rows are in the store; then offers --rate events per second for --duration and reads
each event's send → handler-done time from the log. With --redis it counts the Redis commands
the throughput phase caused and runs redis-benchmark's pipelined XADD for comparison.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			vals, err := resolve(cmd.Flags())
			if err != nil {
				return err
			}
			vals["app"] = "bench" // the bench writes its own app; hostConfig wants one named
			cfg, err := hostConfig(vals)
			if err != nil {
				return err
			}
			cfg.AppDir, cfg.DataDir = "", ""
			o.Host = cfg
			rep, err := bench.Events(cmd.Context(), o)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			fmt.Fprint(cmd.OutOrStdout(), rep.String())
			return nil
		},
	}
	cmd.Flags().IntVar(&o.Events, "events", 50000, "events the throughput phase sends")
	cmd.Flags().IntVar(&o.Senders, "senders", 64, "concurrent senders of the throughput phase")
	cmd.Flags().IntVar(&o.Rate, "rate", 5000, "events per second offered in the latency phase (0 skips it)")
	cmd.Flags().DurationVar(&o.Duration, "duration", 5*time.Second, "length of the latency phase")
	cmd.Flags().BoolVar(&o.XADDBaseline, "xadd", true, "with --redis, also run redis-benchmark's pipelined XADD")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	addSettings(cmd, "redis", "clickhouse", "sandbox", "workers", "timeout", "config")
	return cmd
}
