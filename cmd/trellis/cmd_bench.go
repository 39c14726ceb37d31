package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/spf13/cobra"

	"github.com/trellis-run/trellis/host/bench"
	"github.com/trellis-run/trellis/host/isolate"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure a host end to end (figures for BENCHMARKS.md)",
	}
	cmd.AddCommand(newBenchEventsCmd(), newBenchListenersCmd())
	return cmd
}

func newBenchListenersCmd() *cobra.Command {
	var (
		o              bench.ListenersOptions
		asJSON, noIdle bool
	)
	cmd := &cobra.Command{
		Use:   "listeners --redis URL",
		Short: "What an app of many listeners costs an idle host (Redis connections, CPU, RSS) and sendEvent to one of them",
		Long: `For each --listeners app size (an app of that many pool listeners, each on its own sender)
and each --hosts cluster size, starts that many 'trellis serve' processes on the same Redis, lets
them settle for --settle, and reports for each host its Redis connections (CLIENT LIST entries
whose address is one of the process's sockets), its CPU over --window in % of one core, and its
resident set. Then, for each app size, one in-process host sends --sends events to one listener,
one at a time, and reports the send → handled time.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			vals, err := resolve(cmd.Flags())
			if err != nil {
				return err
			}
			vals["app"] = "bench"
			cfg, err := hostConfig(vals)
			if err != nil {
				return err
			}
			cfg.AppDir, cfg.DataDir = "", ""
			o.Host = cfg
			if !noIdle {
				self, err := os.Executable()
				if err != nil {
					return err
				}
				o.Serve = []string{self, "serve"}
			}
			rep, err := bench.Listeners(cmd.Context(), o)
			if err != nil {
				return err
			}
			return printReport(cmd, rep, asJSON)
		},
	}
	cmd.Flags().IntSliceVar(&o.Listeners, "listeners", []int{10, 1000}, "app sizes: listeners per app")
	cmd.Flags().IntSliceVar(&o.Hosts, "hosts", []int{1, 3}, "cluster sizes of the idle phase: hosts per cluster")
	cmd.Flags().DurationVar(&o.Settle, "settle", 10*time.Second, "how long idle hosts run before they are measured")
	cmd.Flags().DurationVar(&o.Window, "window", 30*time.Second, "how long idle CPU is measured")
	cmd.Flags().IntVar(&o.Sends, "sends", 1000, "events the latency phase sends to one listener")
	cmd.Flags().BoolVar(&noIdle, "no-idle", false, "skip the idle phase")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	addSettings(cmd, "redis", "sandbox", "workers", "config")
	return cmd
}

func newBenchEventsCmd() *cobra.Command {
	var (
		o          bench.EventsOptions
		asJSON     bool
		profileDir string
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
			if profileDir != "" {
				stop, err := startBenchProfile(profileDir)
				if err != nil {
					return err
				}
				defer stop()
			}
			rep, err := bench.Events(cmd.Context(), o)
			if err != nil {
				return err
			}
			return printReport(cmd, rep, asJSON)
		},
	}
	cmd.Flags().IntVar(&o.Events, "events", 50000, "events the throughput phase sends")
	cmd.Flags().IntVar(&o.Senders, "senders", 64, "concurrent senders of the throughput phase")
	cmd.Flags().IntVar(&o.Rate, "rate", 5000, "events per second offered in the latency phase (0 skips it)")
	cmd.Flags().DurationVar(&o.Duration, "duration", 5*time.Second, "length of the latency phase")
	cmd.Flags().StringVar(&profileDir, "cpuprofile", "", "write CPU profiles of the whole run to this directory: host.pprof, and worker-<pid>.pprof per sandbox worker")
	cmd.Flags().BoolVar(&o.XADDBaseline, "xadd", true, "with --redis, also run redis-benchmark's pipelined XADD")
	cmd.Flags().IntVar(&o.Hosts, "hosts", 1, "hosts of one cluster in this process (past 1 needs --redis); senders spread over them")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	addSettings(cmd, "redis", "clickhouse", "sandbox", "workers", "timeout", "config")
	return cmd
}

// startBenchProfile profiles this process into dir/host.pprof and has every sandbox worker the
// bench starts profile itself beside it (isolate.EnvWorkerProfile); stop ends the host's.
func startBenchProfile(dir string) (stop func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, "host.pprof"))
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := os.Setenv(isolate.EnvWorkerProfile, dir); err != nil {
		pprof.StopCPUProfile()
		_ = f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}

// printReport prints a bench's report: as indented JSON with --json, else as its String.
func printReport(cmd *cobra.Command, rep fmt.Stringer, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprint(cmd.OutOrStdout(), rep.String())
	return nil
}
