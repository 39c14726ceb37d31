package main

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

// sampleApp is what `trellis init` writes: one element of each kind, runnable as is.
//
//go:embed all:sample
var sampleApp embed.FS

func newInitCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "init DIR",
		Short: "Write a runnable sample app into DIR",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
				return fmt.Errorf("%s is not empty: init writes a new app only into a new or empty directory", dir)
			}
			root, _ := fs.Sub(sampleApp, "sample")
			err := fs.WalkDir(root, ".", func(path string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				target := filepath.Join(dir, filepath.FromSlash(path))
				if d.IsDir() {
					return os.MkdirAll(target, 0o755)
				}
				b, err := fs.ReadFile(root, path)
				if err != nil {
					return err
				}
				return os.WriteFile(target, b, 0o644)
			})
			if err != nil {
				return fmt.Errorf("write sample app into %s: %w", dir, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote a sample app to %s\nnext: trellis check --app %s && trellis call --app %s services.GreetingSvc.hello '{\"name\": \"Ada\"}'\n", dir, dir, dir)
			return nil
		},
	}
}
