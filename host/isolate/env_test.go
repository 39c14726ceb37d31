package isolate

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A worker runs the app's code: it must not see the host's secrets in its environment (the
// admin token, DSNs with passwords), only what a worker needs (EnvWorker, the Go runtime's
// variables, TZ) and Options.Env. Read from /proc/<pid>/environ of a live worker.
func TestWorkersDoNotInheritTheHostsSecrets(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/<pid>/environ")
	}
	t.Setenv("TRELLIS_ADMIN_TOKEN", "secret-admin-token")
	t.Setenv("TRELLIS_DB_DSN", "postgres://trellis:hunter2@10.0.0.7:5432/app")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "hunter3")
	t.Setenv("GOTRACEBACK", "single")
	p, err := New(Options{Workers: 1, Spares: -1, Env: []string{"TZ=Asia/Shanghai"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	p.mu.Lock()
	var pids []int
	for w := range p.procs {
		pids = append(pids, w.pid)
	}
	p.mu.Unlock()
	require.NotEmpty(t, pids)
	for _, pid := range pids {
		raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
		require.NoError(t, err)
		env := map[string]string{}
		for _, kv := range strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00") {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		// Asserted without printing the environment: it is the host's, with whatever it holds.
		require.False(t, strings.Contains(string(raw), "hunter") || strings.Contains(string(raw), "secret-admin-token"),
			"a secret of the host's environment reached worker %d", pid)
		for k := range env {
			require.False(t, strings.HasPrefix(k, "TRELLIS_") && k != EnvWorker, "worker %d has %s", pid, k)
		}
		require.Equal(t, "1", env[EnvWorker])
		require.Equal(t, "single", env["GOTRACEBACK"], "the Go runtime's variables are kept")
		require.Equal(t, "Asia/Shanghai", env["TZ"], "Options.Env is added")
		_, hasPath := env["PATH"]
		require.False(t, hasPath, "nothing else of the host's")
	}
}
