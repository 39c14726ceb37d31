package redistracker_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/bus/redisbus/redistest"
	"github.com/trellis-run/trellis/host/requests"
	"github.com/trellis-run/trellis/host/requests/redistracker"
	"github.com/trellis-run/trellis/host/requests/requeststest"
	"github.com/trellis-run/trellis/host/vocab"
)

func TestConformance(t *testing.T) {
	url := os.Getenv("TRELLIS_TEST_REDIS")
	if url == "" {
		t.Skip("TRELLIS_TEST_REDIS is not set")
	}
	opts, err := redis.ParseURL(url)
	require.NoError(t, err)
	client := redis.NewClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	prefix := "trellis:test:" + vocab.NewID("t_") + ":requests:"
	requeststest.Run(t, func(t *testing.T) requests.Tracker { return redistracker.New(client, prefix) })
}

// After Redis lost its scripts (a restart, SCRIPT FLUSH) the calls load them again.
func TestScriptsFlushed(t *testing.T) {
	url := os.Getenv("TRELLIS_TEST_REDIS")
	if url == "" {
		t.Skip("TRELLIS_TEST_REDIS is not set")
	}
	opts, err := redis.ParseURL(url)
	require.NoError(t, err)
	client := redis.NewClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	ctx := context.Background()
	tr := redistracker.New(client, "trellis:test:"+vocab.NewID("t_")+":requests:")
	require.NoError(t, tr.OpenNodes(ctx, "req_1", "a", "b"))
	require.NoError(t, client.ScriptFlush(ctx).Err())
	fin, err := tr.CloseNode(ctx, "req_1", "a")
	require.NoError(t, err)
	require.False(t, fin)
	require.NoError(t, client.ScriptFlush(ctx).Err())
	require.NoError(t, tr.OpenNodes(ctx, "req_1", "c"))
	require.NoError(t, client.ScriptFlush(ctx).Err())
	fin, err = tr.CloseNode(ctx, "req_1", "b")
	require.NoError(t, err)
	require.False(t, fin)
	fin, err = tr.CloseNode(ctx, "req_1", "c")
	require.NoError(t, err)
	require.True(t, fin)
}

// On a Redis Cluster the tracker passes the same suite: each request's set is one key, its
// scripts touch only it, and a batch's pipeline is split by slot among the masters.
func TestConformanceCluster(t *testing.T) {
	url := redistest.ClusterURL(t)
	client := redistest.Client(t, url)
	prefix := "trellis:test:" + vocab.NewID("t_") + ":requests:"
	t.Cleanup(func() { redistest.DeleteKeys(t, url, prefix+"*") })
	requeststest.Run(t, func(t *testing.T) requests.Tracker { return redistracker.New(client, prefix) })
}

// After the masters of a Redis Cluster lost their scripts (a restart, SCRIPT FLUSH) a batch
// whose requests lie on every master loads them again on each.
func TestScriptsFlushedCluster(t *testing.T) {
	url := redistest.ClusterURL(t)
	client := redistest.Client(t, url).(*redis.ClusterClient)
	prefix := "trellis:test:" + vocab.NewID("t_") + ":requests:"
	t.Cleanup(func() { redistest.DeleteKeys(t, url, prefix+"*") })
	ctx := context.Background()
	tr := redistracker.New(client, prefix)
	flush := func() {
		require.NoError(t, client.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return m.ScriptFlush(ctx).Err() }))
	}
	const n = 30 // requests enough to lie on all three masters
	masters := map[string]bool{}
	for i := range n {
		node, err := client.MasterForKey(ctx, prefix+fmt.Sprint("req_", i))
		require.NoError(t, err)
		masters[node.Options().Addr] = true
	}
	require.Len(t, masters, 3)
	flush()
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.NoError(t, tr.OpenNodes(ctx, fmt.Sprint("req_", i), "a", "b"))
		}()
	}
	wg.Wait()
	flush()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fin, err := tr.CloseNode(ctx, fmt.Sprint("req_", i), "a")
			assert.NoError(t, err)
			assert.False(t, fin)
			fin, err = tr.CloseNode(ctx, fmt.Sprint("req_", i), "b")
			assert.NoError(t, err)
			assert.True(t, fin, "req_%d finished", i)
		}()
	}
	wg.Wait()
}
