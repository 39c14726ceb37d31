package host_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/backends"
	"github.com/trellis-run/trellis/host/bus/redisbus/redistest"
	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/logstore"
)

// redisURL is the real Redis of the cluster tests; without it they skip and say how to run them.
func redisURL(t *testing.T) string {
	t.Helper()
	url := os.Getenv("TRELLIS_TEST_REDIS")
	if url == "" {
		t.Skip(`TRELLIS_TEST_REDIS is not set: run eval "$(scripts/services.sh start)" first to run the cluster tests`)
	}
	return url
}

// Two hosts share a listener's pool on one Redis server and on a Redis Cluster.
func TestClusterOnRedisSharesThePool(t *testing.T) {
	t.Parallel()
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		testClusterSharesThePool(t, redisURL(t), fmt.Sprintf("cluster%d", time.Now().UnixNano()))
	})
	t.Run("redis-cluster", func(t *testing.T) {
		t.Parallel()
		url := redistest.ClusterURL(t)
		app := fmt.Sprintf("cluster%d", time.Now().UnixNano())
		t.Cleanup(func() {
			redistest.DeleteKeys(t, url, "trellis:"+app+":*")
			redistest.DeleteKeys(t, url, "{trellis:"+app+":*")
		})
		testClusterSharesThePool(t, url, app)
	})
}

func testClusterSharesThePool(t *testing.T, url, app string) {
	dir := writeApp(t, map[string]string{
		"app.json":            fmt.Sprintf(`{"name": %q}`, app),
		"events/Job/e.json":   `{"title": "Job", "type": "events.NormalType", "sender": "jobs"}`,
		"events/Job/index.js": `exports.handle = function (event) { return event.kwargs.n; };`,
	})
	var hosts []*host.Host
	for i := 0; i < 2; i++ {
		// Each host has a log of its own, as hosts on different machines without ClickHouse do;
		// the checks below read both.
		h, err := host.New(host.Config{AppDir: dir, DataDir: t.TempDir(), Sandbox: host.SandboxInProcess, ServeEvents: true, RedisURL: url}, backends.Open)
		require.NoError(t, err)
		require.NoError(t, h.Start(context.Background()))
		t.Cleanup(func() { _ = h.Stop(context.Background()) })
		hosts = append(hosts, h)
	}
	require.Equal(t, "redis", hosts[0].Backends()["bus"])
	ctx := context.Background()
	var nodes []string
	for i := 0; i < 60; i++ {
		res, err := hosts[i%2].SendEvent(ctx, engine.SendRequest{Sender: "jobs", Kwargs: map[string]any{"n": int64(i)}})
		require.NoError(t, err)
		nodes = append(nodes, res.NodeIDs...)
	}
	runsBy := map[string]int{}
	require.Eventually(t, func() bool {
		for _, h := range hosts {
			require.NoError(t, h.LogWriter().Flush(ctx))
		}
		done := 0
		runsBy = map[string]int{}
		for _, n := range nodes {
			runs, succeeded := 0, false
			for _, h := range hosts {
				rows, err := h.LogStore().Attempts(ctx, n)
				require.NoError(t, err)
				for _, r := range rows {
					switch r.Status {
					case logstore.StatusRunning:
						runs++
						runsBy[r.Host]++
					case logstore.StatusSuccess:
						succeeded = true
					}
				}
			}
			require.LessOrEqual(t, runs, 1, "node %s ran more than once", n)
			if succeeded {
				done++
			}
		}
		return done == len(nodes)
	}, 30*time.Second, 50*time.Millisecond)
	require.Len(t, runsBy, 2, "both hosts took work: %v", runsBy)
}
