package backends_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/backends"
	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/host/bus/localbus"
	"github.com/trellis-run/trellis/host/bus/redisbus"
	"github.com/trellis-run/trellis/host/bus/redisbus/redistest"
	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/timers"
	"github.com/trellis-run/trellis/host/vocab"
)

func appDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "app.json"), []byte(`{"name": "b"}`), 0o644))
	return dir
}

func TestEmbeddedByDefault(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := host.Config{AppDir: appDir(t), ServeEvents: true}
	b, err := backends.Open(ctx, cfg, "b")
	require.NoError(t, err)
	require.Equal(t, map[string]string{"bus": "embedded", "logs": "embedded", "db": "embedded"}, b.Names)
	require.IsType(t, &localbus.Bus{}, b.Bus)
	require.NotNil(t, b.Timers)
	require.NotNil(t, b.Coordinator, "a serving host coordinates ticks")
	require.NotNil(t, b.Logs)
	require.NotNil(t, b.Models)
	require.NoError(t, b.Close())

	// Close released every file lock: the same data directory opens again.
	again, err := backends.Open(ctx, cfg, "b")
	require.NoError(t, err)

	// A process beside the serving one (trellis call) gets no bus, and says why; no tick lock.
	cfg.ServeEvents = false
	beside, err := backends.Open(ctx, cfg, "b")
	require.NoError(t, err)
	require.Nil(t, beside.Bus)
	require.ErrorIs(t, beside.BusUnavailable, engine.ErrUnavailable)
	require.Nil(t, beside.Coordinator)
	require.NoError(t, beside.Close())
	require.NoError(t, again.Close())
}

// A backend that fails to open closes those opened before it, and the error names the setting.
func TestFailureClosesWhatWasOpened(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := host.Config{AppDir: appDir(t), ServeEvents: true, DBDSN: "postgres://nobody:wrong@127.0.0.1:1/none?connect_timeout=1"}
	_, err := backends.Open(ctx, cfg, "b")
	require.ErrorContains(t, err, "PostgreSQL (--db)")
	cfg.DBDSN = ""
	b, err := backends.Open(ctx, cfg, "b")
	require.NoError(t, err, "the embedded bus and stores opened before the failure were closed")
	require.NoError(t, b.Close())

	_, err = backends.Open(ctx, host.Config{AppDir: appDir(t), RedisURL: "http://not-redis"}, "b")
	require.ErrorContains(t, err, "--redis")
}

func TestRedisWhenConfigured(t *testing.T) {
	t.Parallel()
	url := os.Getenv("TRELLIS_TEST_REDIS")
	if url == "" {
		t.Skip(`TRELLIS_TEST_REDIS is not set: run eval "$(scripts/services.sh start)" first`)
	}
	b, err := backends.Open(context.Background(), host.Config{AppDir: appDir(t), RedisURL: url}, "b")
	require.NoError(t, err)
	require.Equal(t, "redis", b.Names["bus"])
	require.IsType(t, &redisbus.Bus{}, b.Bus)
	require.NotNil(t, b.Coordinator, "Redis coordinates ticks on every host")
	require.NotNil(t, b.Release, "the task store and the coordinator share one client")
	require.NoError(t, b.Close())
}

// --redis redis+cluster://… runs every Redis part on a Redis Cluster: the bus, the task store
// (its keys tagged into one slot), the tick coordinator and the request tracker.
func TestRedisClusterWhenConfigured(t *testing.T) {
	t.Parallel()
	url := redistest.ClusterURL(t)
	app := "b" + vocab.NewID("")
	t.Cleanup(func() {
		redistest.DeleteKeys(t, url, "trellis:"+app+":*")
		redistest.DeleteKeys(t, url, "{trellis:"+app+":timers}:*")
	})
	ctx := context.Background()
	b, err := backends.Open(ctx, host.Config{AppDir: appDir(t), RedisURL: url}, app)
	require.NoError(t, err)
	defer b.Close()
	require.Equal(t, "redis", b.Names["bus"])

	sub, err := b.Bus.Subscribe(ctx, "t", "g", bus.SubscribeOptions{Consumer: "c"})
	require.NoError(t, err)
	_, err = b.Bus.Publish(ctx, "t", &bus.Message{Payload: []byte("x")})
	require.NoError(t, err)
	select {
	case d := <-sub.Deliveries():
		require.NoError(t, d.Ack(ctx))
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery on the cluster")
	}

	_, _, err = b.Timers.Create(ctx, timers.Task{FullName: "tasks.X", StartTime: time.Now().Add(-time.Second)})
	require.NoError(t, err)
	claimed, err := b.Timers.Claim(ctx, time.Now(), "h", time.Minute, 1)
	require.NoError(t, err)
	require.Len(t, claimed, 1)

	ok, err := b.Coordinator.ClaimTick(ctx, "tasks.Cron", time.Now())
	require.NoError(t, err)
	require.True(t, ok)

	require.NoError(t, b.Requests.OpenNodes(ctx, "req_1", "n1"))
	fin, err := b.Requests.CloseNode(ctx, "req_1", "n1")
	require.NoError(t, err)
	require.True(t, fin)
	require.NoError(t, b.Close())
}

// A --redis URL that cannot be parsed is refused with the flag's name, without its password.
func TestRedisURLErrors(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"redis+sentinel://:hunter2@127.0.0.1:1", "redis+cluster://:hunter2@a:1,,b:2", "redis://:hunter2@h:1/x"} {
		_, err := backends.Open(context.Background(), host.Config{AppDir: appDir(t), RedisURL: u}, "b")
		require.ErrorContains(t, err, "--redis", u)
		require.NotContains(t, err.Error(), "hunter2", u)
	}
}
