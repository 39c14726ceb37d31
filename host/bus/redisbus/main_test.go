package redisbus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
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

func deleteKeys(t testing.TB, url, prefix string) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return
	}
	c := redis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if len(keys) > 0 {
		if err := c.Del(ctx, keys...).Err(); err != nil {
			t.Logf("cleanup of %s*: %v", prefix, err)
		}
	}
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
