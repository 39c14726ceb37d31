package redislock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/bus/redisbus/redistest"
	"github.com/trellis-run/trellis/host/timers/recurring"
	"github.com/trellis-run/trellis/host/timers/recurring/coordtest"
)

// The tests run against the shared Redis named by TRELLIS_TEST_REDIS; every store they open has
// a key prefix of its own, deleted when the test ends. DB 0 is shared: nothing is flushed.

const envRedis = "TRELLIS_TEST_REDIS"

// client returns a new client (with options of its own) of the shared test Redis, or skips the
// test.
func client(t testing.TB) *redis.Client {
	t.Helper()
	u := os.Getenv(envRedis)
	if u == "" {
		t.Skipf("%s is not set; run `eval \"$(scripts/services.sh start)\"` (or export %s=redis://127.0.0.1:6379/0) to test against a real Redis", envRedis, envRedis)
	}
	opts, err := redis.ParseURL(u)
	require.NoError(t, err)
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// newPrefix returns a key prefix no other test uses and deletes its keys at the end.
func newPrefix(t testing.TB, c *redis.Client) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	p := "trellis:test:recurring:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := c.Scan(ctx, 0, p+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		for len(keys) > 0 {
			n := min(len(keys), 500)
			_ = c.Del(ctx, keys[:n]...).Err()
			keys = keys[n:]
		}
	})
	return p
}

func TestConformance(t *testing.T) {
	t.Parallel()
	c := client(t)
	var prefixes sync.Map // *Coordinator → prefix
	coordtest.Run(t, coordtest.Backend{
		Open: func(t *testing.T, n int) []recurring.Coordinator {
			p := newPrefix(t, c)
			out := make([]recurring.Coordinator, n)
			for i := range out {
				// A client per handle, as each host has its own connection pool.
				co := New(client(t), p)
				prefixes.Store(co, p)
				out[i] = co
			}
			return out
		},
		Reopen: func(t *testing.T, old recurring.Coordinator) recurring.Coordinator {
			p, ok := prefixes.Load(old)
			require.True(t, ok)
			return New(c, p.(string))
		},
	})
}

// A lease whose lock was lost (its host paused past the ttl and the key expired or was taken)
// stops renewing, so it cannot keep someone else's lock alive; the lock then lapses and another
// host takes it.
func TestLostLeaseStopsRenewing(t *testing.T) {
	t.Parallel()
	c := client(t)
	a := New(c, newPrefix(t, c))
	b := New(c, a.prefix)
	ctx := context.Background()
	rel, ok, err := a.AcquireRun(ctx, "tasks.Lost", 300*time.Millisecond)
	require.NoError(t, err)
	require.True(t, ok)
	defer rel()
	key := a.key("tasks.Lost", "run")
	require.NoError(t, c.Set(ctx, key, "another-host", 300*time.Millisecond).Err())
	require.Eventually(t, func() bool {
		r, ok, err := b.AcquireRun(ctx, "tasks.Lost", time.Second)
		if err == nil && ok {
			r()
		}
		return ok
	}, 5*time.Second, 20*time.Millisecond, "a lease must not renew a lock it no longer holds")
}

// A host that died holding a run lock (nothing renews or releases it) loses it after the ttl.
func TestDeadHolderLockLapses(t *testing.T) {
	t.Parallel()
	c := client(t)
	co := New(c, newPrefix(t, c))
	ctx := context.Background()
	require.NoError(t, c.Set(ctx, co.key("tasks.Dead", "run"), "dead-host-token", 300*time.Millisecond).Err())
	_, ok, err := co.AcquireRun(ctx, "tasks.Dead", time.Second)
	require.NoError(t, err)
	require.False(t, ok, "held by the dead host until its ttl ends")
	require.Eventually(t, func() bool {
		r, ok, err := co.AcquireRun(ctx, "tasks.Dead", time.Second)
		if err == nil && ok {
			r()
		}
		return ok
	}, 5*time.Second, 20*time.Millisecond)
}

// A late release does not delete the lock another host holds since.
func TestLostLockNotReleased(t *testing.T) {
	t.Parallel()
	c := client(t)
	a := New(c, newPrefix(t, c))
	ctx := context.Background()
	rel, ok, err := a.AcquireRun(ctx, "tasks.Late", 300*time.Millisecond)
	require.NoError(t, err)
	require.True(t, ok)
	key := a.key("tasks.Late", "run")
	require.NoError(t, c.Set(ctx, key, "other-host", time.Minute).Err())
	rel()
	v, err := c.Get(ctx, key).Result()
	require.NoError(t, err)
	require.Equal(t, "other-host", v, "release must only delete this lease's own lock")
}

// Claims still work after the server forgot the scripts (SCRIPT FLUSH, a restart). SCRIPT FLUSH
// is server-wide, so this runs on a private redis-server, never the shared one.
func TestScriptReload(t *testing.T) {
	t.Parallel()
	srv := redistest.New(t, "--save", "")
	t.Cleanup(srv.Remove)
	opts, err := redis.ParseURL(srv.URL())
	require.NoError(t, err)
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	co := New(c, "")
	ctx := context.Background()
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	ok, err := co.ClaimTick(ctx, "tasks.Flush", at)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, c.ScriptFlush(ctx).Err())
	ok, err = co.ClaimTick(ctx, "tasks.Flush", at.Add(time.Minute))
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = co.ClaimTick(ctx, "tasks.Flush", at)
	require.NoError(t, err)
	require.False(t, ok)
}

// Concurrent calls share pipelines: thousands of claims take far fewer round trips.
func TestClaimsAreBatched(t *testing.T) {
	t.Parallel()
	c := client(t)
	co := New(c, newPrefix(t, c))
	var pipelines, cmds int
	var mu sync.Mutex
	c2 := client(t)
	c2.AddHook(countHook{mu: &mu, pipelines: &pipelines, cmds: &cmds})
	co.client, co.b = c2, newBatcher(c2)
	ctx := context.Background()
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	// Load the script first so NOSCRIPT fallbacks do not count.
	_, err := co.ClaimTick(ctx, "tasks.Warm", at)
	require.NoError(t, err)
	mu.Lock()
	pipelines, cmds = 0, 0
	mu.Unlock()
	const n = 2000
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := co.ClaimTick(ctx, "tasks.Batch"+hex.EncodeToString([]byte{byte(i >> 8), byte(i)}), at)
			if err != nil || !ok {
				t.Errorf("claim %d: ok=%v err=%v", i, ok, err)
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	require.Less(t, pipelines, n/4, "concurrent claims must share round trips (%d pipelines for %d claims)", pipelines, n)
	require.Less(t, cmds, n/4, "and script calls (%d for %d claims)", cmds, n)
}

type countHook struct {
	mu              *sync.Mutex
	pipelines, cmds *int
}

func (h countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return next
}
func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		// Count only the claims: a new connection's handshake runs as a pipeline too.
		n := 0
		for _, c := range cmds {
			if c.Name() == "evalsha" {
				n++
			}
		}
		h.mu.Lock()
		if n > 0 {
			*h.pipelines++
			*h.cmds += n
		}
		h.mu.Unlock()
		return next(ctx, cmds)
	}
}

// On a Redis Cluster the coordinator passes the same suite: a template's keys share its slot
// (the claim script touches two of them), and claims go one script call each.
func TestConformanceCluster(t *testing.T) {
	t.Parallel()
	url := redistest.ClusterURL(t)
	var prefixes sync.Map // *Coordinator → prefix
	coordtest.Run(t, coordtest.Backend{
		Open: func(t *testing.T, n int) []recurring.Coordinator {
			p := "trellis:test:recurring:" + hex.EncodeToString(randomBytes(6)) + ":"
			t.Cleanup(func() { redistest.DeleteKeys(t, url, p+"*") })
			out := make([]recurring.Coordinator, n)
			for i := range out {
				co := New(redistest.Client(t, url), p)
				prefixes.Store(co, p)
				out[i] = co
			}
			return out
		},
		Reopen: func(t *testing.T, old recurring.Coordinator) recurring.Coordinator {
			p, ok := prefixes.Load(old)
			require.True(t, ok)
			return New(redistest.Client(t, url), p.(string))
		},
	})
}

// On a Redis Cluster the templates' keys spread over the masters, while each template's claim
// and last-tick keys share a slot.
func TestClusterTemplatesSpread(t *testing.T) {
	t.Parallel()
	url := redistest.ClusterURL(t)
	c := redistest.Client(t, url).(*redis.ClusterClient)
	p := "trellis:test:recurring:" + hex.EncodeToString(randomBytes(6)) + ":"
	t.Cleanup(func() { redistest.DeleteKeys(t, url, p+"*") })
	co := New(c, p)
	ctx := context.Background()
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	masters := map[string]bool{}
	for i := range 32 {
		tpl := "tasks.Spread" + hex.EncodeToString([]byte{byte(i)})
		ok, err := co.ClaimTick(ctx, tpl, at)
		require.NoError(t, err)
		require.True(t, ok)
		tick, err := c.ClusterKeySlot(ctx, co.key(tpl, "tick:"+strconv.FormatInt(at.UnixNano(), 10))).Result()
		require.NoError(t, err)
		last, err := c.ClusterKeySlot(ctx, co.key(tpl, "last")).Result()
		require.NoError(t, err)
		require.Equal(t, tick, last, "a template's keys share a slot")
		node, err := c.MasterForKey(ctx, co.key(tpl, "last"))
		require.NoError(t, err)
		masters[node.Options().Addr] = true
	}
	require.Len(t, masters, 3, "32 templates over three masters")
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}
