package main

import (
	"github.com/spf13/cobra"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "trellis",
		Short:         "Trellis hosts low-code apps: events, tasks and services in sandboxed JavaScript",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newInitCmd(), newCheckCmd(), newCallCmd(), newServeCmd(), newLogsCmd(), newBenchCmd(), newNodeCmd(), newRequestCmd())
	return root
}
