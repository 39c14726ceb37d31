package redisspool_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/bus/redisbus/redistest"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
	"github.com/trellis-run/trellis/logstore/localstore"
	"github.com/trellis-run/trellis/logstore/redisspool"
)

// servers are the Redis deployments the suite runs on: the shared test server, and the test
// Redis Cluster when one is running.
func servers(t *testing.T) map[string]string {
	out := map[string]string{}
	if u := os.Getenv("TRELLIS_TEST_REDIS"); u != "" {
		out["redis"] = u
	}
	if u := os.Getenv(redistest.EnvCluster); u != "" {
		out["cluster"] = u
	}
	if len(out) == 0 {
		t.Skip("TRELLIS_TEST_REDIS is not set; run `eval \"$(scripts/services.sh start)\"`")
	}
	return out
}

// countingStore is an embedded log store that counts how many successful inserts carried each
// row, and can be made to fail or hang, as ClickHouse down or stuck would.
type countingStore struct {
	logstore.Store
	mu   sync.Mutex
	sent map[string]int
	fail atomic.Bool
	hang chan struct{} // when set, Insert blocks until it is closed, ignoring its context
}

func newStore(t *testing.T) *countingStore {
	st, err := localstore.Open(filepath.Join(t.TempDir(), "logs"), localstore.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return &countingStore{Store: st, sent: map[string]int{}}
}

func (c *countingStore) Insert(ctx context.Context, rows []logstore.Row) error {
	c.mu.Lock()
	hang := c.hang
	c.mu.Unlock()
	if hang != nil {
		<-hang
	}
	if c.fail.Load() {
		return fmt.Errorf("%w: the test's store is down", logstore.ErrUnavailable)
	}
	if err := c.Store.Insert(ctx, rows); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range rows {
		c.sent[r.ID]++
	}
	return nil
}

func (c *countingStore) count(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent[id]
}

func rows(n int) []logstore.Row {
	out := make([]logstore.Row, n)
	now := time.Now().UTC()
	for i := range out {
		out[i] = logstore.Row{
			ID: vocab.NewID("st_"), Kind: logstore.KindEvent, FullName: "events.Job", Status: logstore.StatusSuccess,
			Stage: logstore.StageDone, RequestID: vocab.NewID("req_"), NodeID: vocab.NewID("node_"), Attempt: 1,
			CreatedAt: now, RecordedAt: now, Host: "test/host",
		}
	}
	return out
}

func start(t *testing.T, rdb redis.UniversalClient, store logstore.Store, o redisspool.Options) *redisspool.Spool {
	t.Helper()
	if o.FlushInterval == 0 {
		o.FlushInterval = 20 * time.Millisecond
	}
	if o.BackoffMin == 0 {
		o.BackoffMin, o.BackoffMax = 5*time.Millisecond, 50*time.Millisecond
	}
	s, err := redisspool.New(rdb, store, o)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	return s
}

// stopWithin stops s, giving up after d (a test that failed may leave its store down).
func stopWithin(s *redisspool.Spool, d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_ = s.Stop(ctx)
}

func each(t *testing.T, f func(t *testing.T, url, key string)) {
	for name, url := range servers(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			key := "trellis:test:" + vocab.NewID("spool_") + ":log:spool"
			t.Cleanup(func() { redistest.DeleteKeys(t, url, key) })
			f(t, url, key)
		})
	}
}

// Rows written by concurrent writers are inserted, each once, by the time Flush returns; Stop
// leaves nothing in the stream and no consumer behind.
func TestWriteFlushInsertsEachRowOnce(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, url, key string) {
		rdb := redistest.Client(t, url)
		store := newStore(t)
		s := start(t, rdb, store, redisspool.Options{Key: key, Consumer: "a"})
		ctx := context.Background()
		var all [][]logstore.Row
		var wg sync.WaitGroup
		var mu sync.Mutex
		for range 8 {
			wg.Go(func() {
				for range 50 {
					rs := rows(3)
					require.NoError(t, s.Write(ctx, rs...))
					mu.Lock()
					all = append(all, rs)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		require.NoError(t, s.Flush(ctx))
		for _, rs := range all {
			for _, r := range rs {
				require.Equal(t, 1, store.count(r.ID), "row %s", r.ID)
			}
		}
		require.Less(t, s.Stats().Batches, int64(400), "Writes share inserts")
		require.NoError(t, s.Stop(ctx))
		n, err := rdb.XLen(ctx, key).Result()
		require.NoError(t, err)
		require.Zero(t, n, "inserted entries are deleted")
		consumers, err := rdb.XInfoConsumers(ctx, key, redisspool.DefaultGroup).Result()
		require.NoError(t, err)
		require.Empty(t, consumers, "a stopped drainer leaves no consumer behind")
	})
}

// A host that dies — its drainer stuck mid-insert, never to acknowledge — loses none of its
// rows: what it had read is taken over after ClaimAfter, what it had not read another host
// reads, and the dead host's own Flush target is met by the other.
func TestRowsOfADeadHostAreInsertedByAnother(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, url, key string) {
		ctx := context.Background()
		deadStore := newStore(t)
		deadStore.hang = make(chan struct{})
		dead := start(t, redistest.Client(t, url), deadStore, redisspool.Options{Key: key, Consumer: "dead", ClaimAfter: 300 * time.Millisecond})
		t.Cleanup(func() { close(deadStore.hang); stopWithin(dead, time.Second) })
		first := rows(5)
		require.NoError(t, dead.Write(ctx, first...))
		// The dead host's drainer has read the first rows and hangs inserting them.
		rdb := redistest.Client(t, url)
		require.Eventually(t, func() bool {
			p, err := rdb.XPending(ctx, key, redisspool.DefaultGroup).Result()
			return err == nil && p.Count > 0
		}, 10*time.Second, 5*time.Millisecond)
		later := rows(5)
		require.NoError(t, dead.Write(ctx, later...))

		store := newStore(t)
		other := start(t, rdb, store, redisspool.Options{Key: key, Consumer: "other", ClaimAfter: 300 * time.Millisecond})
		t.Cleanup(func() { stopWithin(other, 10*time.Second) })
		fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		require.NoError(t, dead.Flush(fctx), "every row the dead host acknowledged is inserted by the other")
		for _, r := range append(first, later...) {
			require.Equal(t, 1, store.count(r.ID), "row %s", r.ID)
		}
		require.Positive(t, other.Stats().TookOver)
	})
}

// The store down for a while: rows wait in Redis, Flush waits, Write keeps acknowledging; when
// the store is back every row is inserted once.
func TestStoreOutageLosesAndDuplicatesNothing(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, url, key string) {
		ctx := context.Background()
		store := newStore(t)
		store.fail.Store(true)
		s := start(t, redistest.Client(t, url), store, redisspool.Options{Key: key, Consumer: "a", ClaimAfter: 300 * time.Millisecond})
		t.Cleanup(func() { stopWithin(s, 10*time.Second) })
		var all []logstore.Row
		for range 20 {
			rs := rows(10)
			require.NoError(t, s.Write(ctx, rs...))
			all = append(all, rs...)
		}
		fctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		err := s.Flush(fctx)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded, "Flush waits while the store is down")
		require.True(t, s.Stats().Retrying)
		time.Sleep(500 * time.Millisecond) // past ClaimAfter: the live drainer keeps its claim
		store.fail.Store(false)
		require.NoError(t, s.Flush(ctx))
		for _, r := range all {
			require.Equal(t, 1, store.count(r.ID), "row %s", r.ID)
		}
		require.Zero(t, s.Stats().TookOver, "a drainer retrying is not taken over from itself")
	})
}

// Redis killed and restarted while rows are written: a Write waits for Redis rather than fail
// (within WriteTimeout), and every acknowledged row is inserted.
func TestRedisRestartLosesNoAcknowledgedRow(t *testing.T) {
	t.Parallel()
	srv := redistest.Durable(t)
	ctx := context.Background()
	store := newStore(t)
	rdb := redistest.Client(t, srv.URL())
	s := start(t, rdb, store, redisspool.Options{Key: "trellis:test:log:spool", Consumer: "a"})
	t.Cleanup(func() { stopWithin(s, 10*time.Second) })
	var acked []logstore.Row
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				rs := rows(2)
				if s.Write(ctx, rs...) == nil {
					mu.Lock()
					acked = append(acked, rs...)
					mu.Unlock()
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	srv.Kill()
	time.Sleep(300 * time.Millisecond)
	srv.Start()
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.Flush(fctx); err != nil {
		g, gerr := rdb.XInfoGroups(ctx, "trellis:test:log:spool").Result()
		p, perr := rdb.XPending(ctx, "trellis:test:log:spool", redisspool.DefaultGroup).Result()
		n, _ := rdb.XLen(ctx, "trellis:test:log:spool").Result()
		t.Fatalf("flush: %v\ngroups %+v %v\npending %+v %v\nlen %d\nstats %+v", err, g, gerr, p, perr, n, s.Stats())
	}
	require.NotEmpty(t, acked)
	for _, r := range acked {
		require.GreaterOrEqual(t, store.count(r.ID), 1, "acknowledged row %s", r.ID)
	}
}

// With the store down and the stream at MaxEntries, Write waits (back-pressure) and says why
// when its context ends; it takes rows again once the store drains the stream.
func TestBackPressureWhenTheStreamIsFull(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, url, key string) {
		ctx := context.Background()
		store := newStore(t)
		store.fail.Store(true)
		s := start(t, redistest.Client(t, url), store, redisspool.Options{Key: key, Consumer: "a", MaxEntries: 3, ClaimAfter: 200 * time.Millisecond})
		t.Cleanup(func() { stopWithin(s, 10*time.Second) })
		var err error
		require.Eventually(t, func() bool {
			wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			err = s.Write(wctx, rows(1)...)
			return err != nil && strings.Contains(err.Error(), "room in the log buffer")
		}, 10*time.Second, time.Millisecond, "Write waits for room once the stream is full")
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Contains(t, err.Error(), "limit 3")
		store.fail.Store(false)
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		require.NoError(t, s.Write(wctx, rows(1)...))
		require.NoError(t, s.Flush(wctx))
	})
}

// Bad input: invalid options name the field; an invalid row is refused with nothing written;
// Write before Start and after Stop say so.
func TestBadInput(t *testing.T) {
	t.Parallel()
	_, err := redisspool.New(nil, nil, redisspool.Options{})
	require.ErrorIs(t, err, redisspool.ErrInvalidOptions)
	each(t, func(t *testing.T, url, key string) {
		rdb := redistest.Client(t, url)
		store := newStore(t)
		for _, o := range []redisspool.Options{{Consumer: "a"}, {Key: key}, {Key: key, Consumer: "a", BatchRows: -1}, {Key: key, Consumer: "a", BackoffMin: time.Second, BackoffMax: time.Millisecond}} {
			_, err := redisspool.New(rdb, store, o)
			require.ErrorIs(t, err, redisspool.ErrInvalidOptions)
		}
		s, err := redisspool.New(rdb, store, redisspool.Options{Key: key, Consumer: "a"})
		require.NoError(t, err)
		ctx := context.Background()
		require.ErrorIs(t, s.Write(ctx, rows(1)...), redisspool.ErrNotStarted)
		require.NoError(t, s.Start(ctx))
		bad := rows(2)
		bad[1].Status = "maybe"
		err = s.Write(ctx, bad...)
		require.ErrorIs(t, err, logstore.ErrInvalidRow)
		n, xerr := rdb.XLen(ctx, key).Result()
		require.NoError(t, xerr)
		require.Zero(t, n, "nothing of a refused Write is written")
		require.NoError(t, s.Stop(ctx))
		require.ErrorIs(t, s.Write(ctx, rows(1)...), redisspool.ErrStopped)
		require.True(t, errors.Is(s.Stop(ctx), nil), "Stop twice")
	})
}
