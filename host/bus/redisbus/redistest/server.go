// Package redistest starts private redis-server processes for tests that must stop, kill or
// restart Redis — which they may never do to the shared server other tests use — and reaches
// the shared test Redis Cluster (TRELLIS_TEST_REDIS_CLUSTER). It is a test helper for the Redis
// backends and the host's event-center tests; nothing in the product imports it.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/redisconn"
)

// Server is a private redis-server a test started.
type Server struct {
	t    testing.TB
	Dir  string
	Port int
	args []string
	conf string // a Sentinel's config file (Sentinel rewrites it), first on its command line
	cmd  *exec.Cmd
}

// Durable starts a private server with an append-only file synced on every write, so a kill -9
// loses nothing Redis acknowledged; it is removed when the test ends.
func Durable(t testing.TB) *Server {
	t.Helper()
	s := New(t, "--appendonly", "yes", "--appendfsync", "always", "--save", "")
	t.Cleanup(s.Remove)
	return s
}

// New starts a private redis-server with the given persistence arguments; the caller removes
// it. The test is skipped when redis-server is not installed.
func New(t testing.TB, args ...string) *Server {
	t.Helper()
	s := newServer(t)
	s.args = args
	s.Start()
	return s
}

// newServer picks a free port and a directory for a server not started yet.
func newServer(t testing.TB) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed (apt-get install redis-server)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	dir, err := os.MkdirTemp("", "redistest-")
	require.NoError(t, err)
	return &Server{t: t, Dir: dir, Port: port}
}

// Replica starts a private server replicating master and waits until it has caught up; it is
// removed when the test ends.
func Replica(t testing.TB, master *Server) *Server {
	t.Helper()
	s := New(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port), "--save", "")
	t.Cleanup(s.Remove)
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", s.Port)})
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, _ := c.Info(context.Background(), "replication").Result()
		if strings.Contains(info, "master_link_status:up") {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica on port %d did not connect to its master on %d:\n%s", s.Port, master.Port, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Sentinel starts a private Redis Sentinel watching master under name (quorum 1, a master down
// for a second is failed over); it is removed when the test ends. Its URL() is the Sentinel's
// own; SentinelURL gives the one clients use.
func Sentinel(t testing.TB, name string, master *Server) *Server {
	t.Helper()
	s := newServer(t)
	s.conf = filepath.Join(s.Dir, "sentinel.conf")
	conf := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 1\nsentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 5000\n",
		name, master.Port, name, name)
	require.NoError(t, os.WriteFile(s.conf, []byte(conf), 0o644))
	s.Start()
	t.Cleanup(s.Remove)
	return s
}

// SentinelURL is the redis+sentinel:// URL of the master this Sentinel watches as name.
func (s *Server) SentinelURL(name string) string {
	return fmt.Sprintf("redis+sentinel://127.0.0.1:%d?master_name=%s", s.Port, name)
}

// URL is the server's redis:// URL.
func (s *Server) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", s.Port) }

// Start starts (or restarts) the server on its port and waits until it answers.
func (s *Server) Start() {
	s.t.Helper()
	var args []string
	if s.conf != "" {
		args = []string{s.conf, "--sentinel"}
	}
	args = append(append(args,
		"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--dir", s.Dir,
		"--logfile", filepath.Join(s.Dir, "redis.log"), "--daemonize", "no",
	), s.args...)
	s.cmd = exec.Command("redis-server", args...)
	require.NoError(s.t, s.cmd.Start())
	opts, err := redis.ParseURL(s.URL())
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
			log, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
			s.t.Fatalf("private redis-server on port %d did not answer: %v\n%s", s.Port, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill ends the server with SIGKILL, as a crash would.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Remove kills the server and deletes its data.
func (s *Server) Remove() {
	s.Kill()
	_ = os.RemoveAll(s.Dir)
}

// EnvCluster names the test Redis Cluster: scripts/services.sh start redis-cluster sets it.
const EnvCluster = "TRELLIS_TEST_REDIS_CLUSTER"

// ClusterURL returns the test Redis Cluster's URL (redis+cluster://…) or skips the test.
func ClusterURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvCluster)
	if u == "" {
		t.Skipf("%s is not set; run `eval \"$(scripts/services.sh start redis-cluster)\"` to test on a Redis Cluster", EnvCluster)
	}
	return u
}

// Client returns a client of the Redis url names, in any form redisconn reads (a cluster
// client for redis+cluster://), closed when the test ends.
func Client(t testing.TB, url string) redis.UniversalClient {
	t.Helper()
	o, err := redisconn.ParseURL(url)
	require.NoError(t, err)
	c := o.NewClient()
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// DeleteKeys deletes the keys that match pattern (a SCAN MATCH pattern, e.g. prefix+"*") on the
// Redis url names — on every master of a cluster — and logs what it could not delete.
func DeleteKeys(t testing.TB, url, pattern string) {
	o, err := redisconn.ParseURL(url)
	if err != nil {
		return
	}
	c := o.NewClient()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	del := func(ctx context.Context, node redis.Cmdable) error {
		iter := node.Scan(ctx, 0, pattern, 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			return err
		}
		// One key per command: on a cluster the keys of one node lie in many slots.
		for _, k := range keys {
			if err := node.Unlink(ctx, k).Err(); err != nil {
				return err
			}
		}
		return nil
	}
	if cc, ok := c.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return del(ctx, m) })
	} else {
		err = del(ctx, c)
	}
	if err != nil {
		t.Logf("cleanup of %s: %v", pattern, err)
	}
}
