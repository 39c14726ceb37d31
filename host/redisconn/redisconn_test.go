package redisconn

import (
	"context"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

func TestParseURL(t *testing.T) {
	t.Parallel()
	o, err := ParseURL("redis://u:secret@10.0.0.5:6380/3?dial_timeout=3s")
	require.NoError(t, err)
	require.Equal(t, Single, o.Kind())
	require.Equal(t, "10.0.0.5:6380", o.Addr())
	require.Equal(t, 3, o.Single.DB)
	require.Equal(t, "secret", o.Single.Password)
	require.Equal(t, 3*time.Second, o.Single.DialTimeout)

	o, err = ParseURL("redis+cluster://u:secret@a:7000,b:7001,c:7002?read_timeout=2s")
	require.NoError(t, err)
	require.Equal(t, Cluster, o.Kind())
	require.Equal(t, []string{"a:7000", "b:7001", "c:7002"}, o.Cluster.Addrs)
	require.Equal(t, "u", o.Cluster.Username)
	require.Equal(t, "secret", o.Cluster.Password)
	require.Equal(t, 2*time.Second, o.Cluster.ReadTimeout)
	require.Nil(t, o.Cluster.TLSConfig)
	require.Equal(t, "a:7000,b:7001,c:7002", o.Addr())

	// go-redis's own form (addr parameters) works too, and a trailing /0.
	o, err = ParseURL("rediss+cluster://a:7000/0?addr=b:7001")
	require.NoError(t, err)
	require.Equal(t, []string{"a:7000", "b:7001"}, o.Cluster.Addrs)
	require.NotNil(t, o.Cluster.TLSConfig)

	o, err = ParseURL("redis+sentinel://su:spass@s1:26379,s2:26380/2?master_name=mymaster&password=mpass")
	require.NoError(t, err)
	require.Equal(t, Sentinel, o.Kind())
	require.Equal(t, "mymaster", o.Failover.MasterName)
	require.Equal(t, []string{"s1:26379", "s2:26380"}, o.Failover.SentinelAddrs)
	require.Equal(t, "spass", o.Failover.SentinelPassword)
	require.Equal(t, "mpass", o.Failover.Password)
	require.Equal(t, 2, o.Failover.DB)
	require.Contains(t, o.Addr(), "mymaster")
}

func TestParseURLErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ url, want string }{
		{"10.0.0.5:6379", "no scheme"},
		{"http://x:1", `scheme "http"`},
		{"redis+cluster://a:7000,,b:7001", "empty host"},
		{"redis+cluster://a:7000,b:7001/3", "database 0 only"},
		{"redis+cluster://a:7000?bogus=1", "bogus"},
		{"redis+sentinel://s1:26379", "master_name"},
		{"redis://u:hunter2@h:1/x", "invalid database"},
		{"redis+cluster://u:hunter2@h:bad,h:2", "hunter2"}, // must not appear: checked below
	} {
		_, err := ParseURL(tc.url)
		require.ErrorIs(t, err, ErrInvalidURL, tc.url)
		require.NotContains(t, err.Error(), "hunter2", "an error must not repeat the password")
		if tc.want != "hunter2" {
			require.Contains(t, err.Error(), tc.want, tc.url)
		}
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	require.Equal(t, "redis://u:xxxxx@h:1/0", Redact("redis://u:pw@h:1/0"))
	require.Equal(t, "redis://h:1/0", Redact("redis://h:1/0"))
	require.Equal(t, "redis+sentinel://s:1?master_name=m&password=xxxxx", Redact("redis+sentinel://s:1?master_name=m&password=pw"))
}

func TestTune(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"redis://h:1/0?read_timeout=7s", "redis+cluster://a:1,b:2?read_timeout=7s", "redis+sentinel://s:1?master_name=m&read_timeout=7s"} {
		o, err := ParseURL(raw)
		require.NoError(t, err)
		var seen Common
		tuned := o.Tune(func(c *Common) {
			seen = *c
			c.PoolSize = 42
			c.ClientName = "x"
		})
		require.Equal(t, 7*time.Second, seen.ReadTimeout, raw)
		require.Equal(t, o.Kind(), tuned.Kind())
		tuned.Tune(func(c *Common) {
			require.Equal(t, 42, c.PoolSize, raw)
			require.Equal(t, "x", c.ClientName, raw)
			require.Equal(t, 7*time.Second, c.ReadTimeout, raw)
		})
		o.Tune(func(c *Common) { require.Zero(t, c.PoolSize, "%s: Tune changed the original", raw) })
	}
}

func TestHashTags(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]bool{"a{b}c": true, "{b}": true, "a{}b": false, "a{b": false, "a}b{": false, "ab": false, "{}{x}": false} {
		require.Equal(t, want, HasHashTag(key), key)
	}
	require.Equal(t, "{trellis:app:timers}:", OneSlot("trellis:app:timers:"))
	require.Equal(t, "{p}:", OneSlot("p"))
	require.Equal(t, "trellis:{app}:x:", OneSlot("trellis:{app}:x:"))
}

// On the test cluster (TRELLIS_TEST_REDIS_CLUSTER): NewClient gives a cluster client that
// reaches three masters; a script may touch keys under one OneSlot prefix, and Redis refuses
// one whose keys lie in different slots — the rule OneSlot exists for.
func TestClusterClient(t *testing.T) {
	t.Parallel()
	raw := os.Getenv("TRELLIS_TEST_REDIS_CLUSTER")
	if raw == "" {
		t.Skip("TRELLIS_TEST_REDIS_CLUSTER is not set; run `eval \"$(scripts/services.sh start redis-cluster)\"` to test on a Redis Cluster")
	}
	o, err := ParseURL(raw)
	require.NoError(t, err)
	c := o.NewClient()
	defer c.Close()
	require.True(t, IsCluster(c))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cc := c.(*redis.ClusterClient)
	var masters atomic.Int32
	require.NoError(t, cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		masters.Add(1)
		return m.Ping(ctx).Err()
	}))
	require.Equal(t, int32(3), masters.Load(), "three masters")

	p := "trellis:redisconn-test:" + time.Now().Format("150405.000000000") + ":"
	two := redis.NewScript(`redis.call('SET', KEYS[1], 1); redis.call('SET', KEYS[2], 2); return 1`)
	slot := OneSlot(p)
	keys := []string{slot + "a", slot + "b"}
	defer c.Del(ctx, keys[0])
	defer c.Del(ctx, keys[1])
	require.NoError(t, two.Run(ctx, c, keys).Err(), "keys under one OneSlot prefix share a slot")

	// Untagged keys of the same prefix spread: find two in different slots.
	a, b := p+"a", ""
	sa, err := cc.ClusterKeySlot(ctx, a).Result()
	require.NoError(t, err)
	for i := 0; b == ""; i++ {
		k := p + "b" + strings.Repeat("x", i)
		sb, err := cc.ClusterKeySlot(ctx, k).Result()
		require.NoError(t, err)
		if sb != sa {
			b = k
		}
	}
	err = two.Run(ctx, c, []string{a, b}).Err()
	require.Error(t, err, "Redis Cluster refuses a script over two slots")
	require.Contains(t, err.Error(), "CROSSSLOT")
}

func TestNewClientKinds(t *testing.T) {
	t.Parallel()
	for raw, cluster := range map[string]bool{"redis://127.0.0.1:1/0": false, "redis+cluster://127.0.0.1:1,127.0.0.1:2": true, "redis+sentinel://127.0.0.1:1?master_name=m": false} {
		o, err := ParseURL(raw)
		require.NoError(t, err)
		c := o.NewClient()
		require.Equal(t, cluster, IsCluster(c), raw)
		require.NoError(t, c.Close())
	}
}
