package host_test

import (
	"bufio"
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/jsvm"
)

// rss is this process's resident set in bytes (Linux).
func rss(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status: resident memory is measured on Linux only")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// In-process, a call that makes a 100 MiB string and a 64 MiB error allocates them in the host;
// once it is over, the host's resident memory comes back near where it was (it stayed 230 MiB
// up: issue 12). Not parallel: it measures the process.
func TestInProcessHostGivesMemoryBack(t *testing.T) {
	h := setup(t, host.Config{Sandbox: host.SandboxInProcess}, map[string]string{
		"app.json":              `{"name": "mem"}`,
		"services/Big/e.json":   `{"title": "Big", "type": "services.NormalType"}`,
		"services/Big/index.js": `exports.big = n => "x".repeat(n); exports.boom = n => { throw new Error("m".repeat(n)) };`,
	})
	ctx := context.Background()
	_, err := h.CallService(ctx, "services.Big", "big", []any{int64(10)})
	require.NoError(t, err)
	runtime.GC()
	base := rss(t)
	_, err = h.CallService(ctx, "services.Big", "big", []any{int64(100 << 20)})
	require.Equal(t, jsvm.CodeResultTooLarge, jsvm.AsError(err).Code)
	_, err = h.CallService(ctx, "services.Big", "boom", []any{int64(64 << 20)})
	require.Equal(t, jsvm.CodeJSError, jsvm.AsError(err).Code)
	peak := rss(t)
	t.Logf("resident: %d MiB before, %d MiB after the calls", base>>20, peak>>20)
	require.Eventually(t, func() bool { return rss(t) < base+48<<20 }, 30*time.Second, 100*time.Millisecond,
		"the host's resident memory stays up after the calls")
	t.Logf("resident: %d MiB once released", rss(t)>>20)
}
