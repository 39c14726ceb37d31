package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/registry"
)

func newCheckCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check --app DIR",
		Short: "Validate an app and report every problem with file, line and column",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			vals, err := resolve(cmd.Flags())
			if err != nil {
				return err
			}
			if vals["app"] == "" {
				return fmt.Errorf("--app is required: the directory that holds app.json")
			}
			problems, warnings := registry.CheckAll(host.RegistryOptions(vals["app"]))
			// Warnings are printed but do not fail the check.
			printWarnings(cmd, vals["app"], warnings)
			if len(problems) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", vals["app"])
				return nil
			}
			printProblems(cmd, vals["app"], problems)
			return exitError{code: 1}
		},
	}
	addSettings(cmd, "app", "config")
	return cmd
}

// printWarnings writes one "file:line:col: warning: message" line per warning.
func printWarnings(cmd *cobra.Command, appDir string, warnings []registry.Problem) {
	for _, w := range warnings {
		w.Message = "warning: " + w.Message
		printProblemLine(cmd, appDir, w)
	}
}

// printProblems writes one "file:line:col: message" line per problem, so editors can jump to it.
func printProblems(cmd *cobra.Command, appDir string, problems []registry.Problem) {
	for _, p := range problems {
		printProblemLine(cmd, appDir, p)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%d problem(s) found\n", len(problems))
}

func printProblemLine(cmd *cobra.Command, appDir string, p registry.Problem) {
	w := cmd.ErrOrStderr()
	where := appDir
	if p.File != "" {
		where = p.File
		if !filepath.IsAbs(where) {
			where = filepath.Join(appDir, p.File)
		}
		if p.Line > 0 {
			where = fmt.Sprintf("%s:%d:%d", where, p.Line, p.Column)
		}
	}
	if p.Element != "" {
		fmt.Fprintf(w, "%s: %s: %s\n", where, p.Element, p.Message)
	} else {
		fmt.Fprintf(w, "%s: %s\n", where, p.Message)
	}
}
