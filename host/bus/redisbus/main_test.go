package redisbus

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/bus/redisbus/redistest"
)

// The tests run against the Redis named by TRELLIS_TEST_REDIS (shared with other suites: every
// bus uses a key prefix of its own, deleted at the end) and, for restarts and outages, against
// private redis-server processes they start themselves: the shared server is never restarted.

const envRedis = "TRELLIS_TEST_REDIS"

var runID = func() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}()

var prefixes atomic.Int64

// redisURL returns the shared test Redis or skips the test.
func redisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(envRedis)
	if u == "" {
		t.Skipf("%s is not set; run `eval \"$(scripts/services.sh start)\"` to test against a real Redis", envRedis)
	}
	return u
}

// newPrefix returns a key prefix no other bus of any run uses, and deletes its keys when the
// test ends.
func newPrefix(t testing.TB, url string) string {
	t.Helper()
	p := fmt.Sprintf("trellis:bustest:%s:%d:", runID, prefixes.Add(1))
	t.Cleanup(func() { deleteKeys(t, url, p) })
	return p
}

func deleteKeys(t testing.TB, url, prefix string) { redistest.DeleteKeys(t, url, prefix+"*") }

// clusterURL returns the test Redis Cluster or skips the test.
func clusterURL(t testing.TB) string { return redistest.ClusterURL(t) }

// eachRedis runs f as a subtest on the shared test Redis ("single") and on the test Redis
// Cluster ("cluster"); each skips when its variable is unset.
func eachRedis(t *testing.T, f func(t *testing.T, url string)) {
	t.Run("single", func(t *testing.T) {
		t.Parallel()
		f(t, redisURL(t))
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		f(t, clusterURL(t))
	})
}

// testOptions are fast settings for tests: short trims and blocks.
func testOptions(url, prefix string) Options {
	return Options{URL: url, Prefix: prefix, TrimInterval: 100 * time.Millisecond, Block: 500 * time.Millisecond}
}

func newBus(t testing.TB, opts Options) *Bus {
	t.Helper()
	b, err := New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// server is a private redis-server a test started (see package redistest).
type server = redistest.Server

func startServer(t testing.TB) *server { return redistest.Durable(t) }

func newServer(t testing.TB, args ...string) *server { return redistest.New(t, args...) }

func TestMain(m *testing.M) {
	code := m.Run()
	if benchSrv != nil {
		benchSrv.Remove()
	}
	os.Exit(code)
}
