package redistracker_test

import (
	"context"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

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
