package redistracker_test

import (
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
