package host_test

import (
	"context"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/jsvm"
)

// held is the memory the Go runtime holds from the operating system and has not given back — what
// a Go process's resident set follows. Read from runtime/metrics rather than /proc's VmRSS, so the
// race detector's shadow memory, which it never gives back, does not hide what the host does.
func held() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64() - s[1].Value.Uint64())
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
	base := held()
	_, err = h.CallService(ctx, "services.Big", "big", []any{int64(100 << 20)})
	require.Equal(t, jsvm.CodeResultTooLarge, jsvm.AsError(err).Code)
	_, err = h.CallService(ctx, "services.Big", "boom", []any{int64(64 << 20)})
	require.Equal(t, jsvm.CodeJSError, jsvm.AsError(err).Code)
	peak := held()
	t.Logf("held from the OS: %d MiB before, %d MiB after the calls", base>>20, peak>>20)
	require.Eventually(t, func() bool { return held() < base+48<<20 }, 30*time.Second, 100*time.Millisecond,
		"the host keeps the calls' memory from the operating system")
	t.Logf("held from the OS: %d MiB once released", held()>>20)
}
