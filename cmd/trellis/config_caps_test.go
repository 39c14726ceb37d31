package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
)

// The size caps are settings like the others: a flag, an environment variable and a
// trellis.yaml key, in that order of precedence; a wrong value is refused naming the flag.
func TestSizeCapSettings(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "trellis.yaml"), []byte("maxDepth: 12\nmaxErrorBytes: 4096\n"), 0o600))
	t.Setenv("TRELLIS_MAX_CONSOLE_BYTES", "8192")
	t.Setenv("TRELLIS_MAX_DEPTH", "")
	cmd := &cobra.Command{Use: "x"}
	addSettings(cmd, "app", "config")
	addSettings(cmd, capSettings...)
	require.NoError(t, cmd.Flags().Parse([]string{"--app", dir, "--max-result", "2048"}))
	vals, err := resolve(cmd.Flags())
	require.NoError(t, err)
	cfg, err := hostConfig(vals)
	require.NoError(t, err)
	require.EqualValues(t, 2048, cfg.Limits.MaxResultBytes, "flag")
	require.EqualValues(t, 8192, cfg.Limits.MaxConsoleBytes, "environment")
	require.EqualValues(t, 12, cfg.Limits.MaxValueDepth, "trellis.yaml")
	require.EqualValues(t, 4096, cfg.Limits.MaxErrorBytes, "trellis.yaml")
	require.EqualValues(t, 8<<20, cfg.Limits.MaxMessageBytes, "default")

	for flag, bad := range map[string]string{"max-result": "-1", "max-error": "lots", "max-console": "0", "max-depth": "1.5", "max-message": "x"} {
		vals := map[string]string{"app": dir, flag: bad}
		_, err := hostConfig(vals)
		require.ErrorContains(t, err, "--"+flag, flag)
	}
}
