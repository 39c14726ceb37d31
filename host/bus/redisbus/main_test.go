package redisbus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
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

// server is a private redis-server this test started, with an append-only file synced on every
// write, so a kill -9 loses nothing Redis acknowledged.
type server struct {
	t    testing.TB
	dir  string
	port int
	args []string
	cmd  *exec.Cmd
}

func startServer(t testing.TB) *server {
	t.Helper()
	s := newServer(t, "--appendonly", "yes", "--appendfsync", "always", "--save", "")
	t.Cleanup(s.remove)
	return s
}

// newServer starts a private redis-server with the given persistence arguments; the caller
// kills it.
func newServer(t testing.TB, args ...string) *server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed (apt-get install redis-server)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	dir, err := os.MkdirTemp("", "redisbus-server-")
	require.NoError(t, err)
	s := &server{t: t, dir: dir, port: port, args: args}
	s.start()
	return s
}

func (s *server) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", s.port) }

func (s *server) start() {
	s.t.Helper()
	args := append([]string{
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--logfile", filepath.Join(s.dir, "redis.log"), "--daemonize", "no",
	}, s.args...)
	s.cmd = exec.Command("redis-server", args...)
	require.NoError(s.t, s.cmd.Start())
	opts, err := redis.ParseURL(s.url())
	require.NoError(s.t, err)
	c := redis.NewClient(opts)
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			s.t.Fatalf("private redis-server on port %d did not answer: %v\n%s", s.port, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill ends the server with SIGKILL, as a crash would.
func (s *server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// remove kills the server and deletes its data.
func (s *server) remove() {
	s.kill()
	_ = os.RemoveAll(s.dir)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchSrv != nil {
		benchSrv.remove()
	}
	os.Exit(code)
}
