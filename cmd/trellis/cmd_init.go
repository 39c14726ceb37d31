package main

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

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
			bin, app := shellWord(invokedAs()), shellWord(dir)
			fmt.Fprintf(cmd.OutOrStdout(), "wrote a sample app to %s\n"+
				"next: %s check --app %s && %s call --app %s services.GreetingSvc.hello '{\"name\": \"Ada\"}'\n"+
				"then: %s serve --app %s   (the greeting's event runs its listener, events/GreetingSent)\n",
				dir, bin, app, bin, app, bin, app)
			return nil
		},
	}
}

// invokedAs is the command as the user typed it (./bin/trellis after `make build`, trellis from
// PATH), so the hints init prints can be pasted back as they are. `go run` runs a binary in a
// temporary build directory that is gone by then; it is named plainly.
func invokedAs() string {
	a := os.Args[0]
	if a == "" || strings.Contains(a, "go-build") {
		return "trellis"
	}
	return a
}

// shellWord quotes s for a POSIX shell when it holds anything but plain path characters, so a
// hint stays pasteable for a directory with spaces.
func shellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:=+@%,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
