package redistimers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/bus/redisbus/redistest"
	"github.com/trellis-run/trellis/host/redisconn"
	"github.com/trellis-run/trellis/host/timers"
	"github.com/trellis-run/trellis/host/timers/timerstest"
)

// The tests run against the Redis named by TRELLIS_TEST_REDIS, shared with other suites: every
// test uses a key prefix of its own, deleted when it ends.

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

func client(t testing.TB, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	require.NoError(t, err)
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// newPrefix returns a key prefix no other test of any run uses, and deletes its keys when the
// test ends.
func newPrefix(t testing.TB, url string) string {
	t.Helper()
	p := fmt.Sprintf("trellis:timerstest:%s:%d:", runID, prefixes.Add(1))
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 1000 {
			_ = c.Unlink(ctx, keys...).Err()
			keys = keys[:0]
		}
	}
	if len(keys) > 0 {
		if err := c.Unlink(ctx, keys...).Err(); err != nil {
			t.Logf("cleanup of %s*: %v", prefix, err)
		}
	}
}

// prefixOf gives each test one prefix; every open within the test is a new client on it.
var prefixOf sync.Map // *testing.T -> string

func open(t *testing.T) timers.Store {
	t.Helper()
	url := redisURL(t)
	p, ok := prefixOf.Load(t)
	if !ok {
		p, _ = prefixOf.LoadOrStore(t, newPrefix(t, url))
	}
	s := New(client(t, url), p.(string))
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	redisURL(t)
	timerstest.Run(t, open)
}

// openCluster is open on the test Redis Cluster (TRELLIS_TEST_REDIS_CLUSTER), with a prefix
// without a hash tag: the store must add one itself.
func openCluster(t *testing.T) timers.Store {
	t.Helper()
	url := redistest.ClusterURL(t)
	p, ok := prefixOf.Load(t)
	if !ok {
		p, _ = prefixOf.LoadOrStore(t, newClusterPrefix(t, url))
	}
	s := New(redistest.Client(t, url), p.(string))
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newClusterPrefix(t testing.TB, url string) string {
	p := fmt.Sprintf("trellis:timerstest:%s:%d:", runID, prefixes.Add(1))
	t.Cleanup(func() { redistest.DeleteKeys(t, url, redisconn.OneSlot(p)+"*") })
	return p
}

// On a Redis Cluster the store passes the same suite: its scripts reach every key of the
// prefix, so they all share one slot.
func TestConformanceCluster(t *testing.T) {
	t.Parallel()
	redistest.ClusterURL(t)
	timerstest.Run(t, openCluster)
}

// On a Redis Cluster every key a store writes is in the slot of its tagged prefix
// ({trellis:…}: — on one server the names stay Prefix + name, as before clusters).
func TestClusterOneSlot(t *testing.T) {
	t.Parallel()
	url := redistest.ClusterURL(t)
	p := newClusterPrefix(t, url)
	c := redistest.Client(t, url)
	s := New(c, p)
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	_, _, err := s.Create(ctx, timers.Task{FullName: "tasks.X", StartTime: time.Now().Add(-time.Second), Key: "k1"})
	require.NoError(t, err)
	_, err = s.Claim(ctx, time.Now(), "h", time.Minute, 1)
	require.NoError(t, err)
	var (
		mu   sync.Mutex
		keys []string
	)
	require.NoError(t, c.(*redis.ClusterClient).ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		ks, err := m.Keys(ctx, redisconn.OneSlot(p)+"*").Result()
		mu.Lock()
		keys = append(keys, ks...)
		mu.Unlock()
		return err
	}))
	require.GreaterOrEqual(t, len(keys), 4, "task hash, indexes, counts: %v", keys)
	slot := -1
	for _, k := range keys {
		require.True(t, strings.HasPrefix(k, "{trellis:timerstest:"), k)
		n, err := c.ClusterKeySlot(ctx, k).Result()
		require.NoError(t, err)
		if slot < 0 {
			slot = int(n)
		}
		require.Equal(t, slot, int(n), "%s is in another slot", k)
	}
}

// With nothing listening, every call fails fast with ErrUnavailable naming the address, and a
// runner's ForcedEnds still starts (it catches up once Redis is back).
func TestRedisDown(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = c.Close() })
	s := New(c, "trellis:down:")
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	_, _, err = s.Create(ctx, timers.Task{FullName: "tasks.X", StartTime: time.Now()})
	require.ErrorIs(t, err, timers.ErrUnavailable)
	require.ErrorContains(t, err, addr)
	_, err = s.Claim(ctx, time.Now(), "h", time.Second, 1)
	require.ErrorIs(t, err, timers.ErrUnavailable)
	_, _, err = s.NextDue(ctx)
	require.ErrorIs(t, err, timers.ErrUnavailable)
	_, err = s.Get(ctx, "task_x")
	require.ErrorIs(t, err, timers.ErrUnavailable)
	_, err = s.ForcedEnds(ctx)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = s.Pending(ctx)
	require.ErrorIs(t, err, timers.ErrClosed)
}

// A waiting task costs a small hash and two sorted-set entries; empty fields are not stored.
func TestCompactHash(t *testing.T) {
	t.Parallel()
	url := redisURL(t)
	c := client(t, url)
	p := newPrefix(t, url)
	s := New(c, p)
	task, _, err := s.Create(context.Background(), timers.Task{FullName: "tasks.X", FuncName: "run", StartTime: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	h, err := c.HGetAll(context.Background(), p+"t:"+task.ID).Result()
	require.NoError(t, err)
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	require.ElementsMatch(t, []string{"q", "s", "fn", "f", "st", "c"}, keys)
	enc, err := c.ObjectEncoding(context.Background(), p+"t:"+task.ID).Result()
	require.NoError(t, err)
	require.Equal(t, "listpack", enc)
}

// After Redis loses its data the force-end log starts over; a ForcedEnds channel notices
// and reports the new force-ends rather than waiting for the old sequence.
func TestForcedEndsAfterDataLoss(t *testing.T) {
	t.Parallel()
	url := redisURL(t)
	c := client(t, url)
	p := newPrefix(t, url)
	s := New(c, p)
	ctx := context.Background()
	require.NoError(t, c.Set(ctx, p+"fseq", 50, 0).Err())
	ch, err := s.ForcedEnds(ctx)
	require.NoError(t, err)
	time.Sleep(2 * forcedPoll) // the channel has read the sequence
	deleteKeys(t, url, p)
	task, _, err := s.Create(ctx, timers.Task{FullName: "tasks.X", StartTime: time.Now().Add(-time.Second)})
	require.NoError(t, err)
	claimed, err := s.Claim(ctx, time.Now(), "h", time.Minute, 1)
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	_, err = s.ForcedEnd(ctx, task.ID)
	require.NoError(t, err)
	select {
	case id := <-ch:
		require.Equal(t, task.ID, id)
	case <-time.After(2 * time.Second):
		t.Fatal("the force-end after the data loss was not reported")
	}
}
