package recurring_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/timers/recurring"
	"github.com/trellis-run/trellis/host/timers/recurring/locallock"
	"github.com/trellis-run/trellis/host/timers/recurring/redislock"
)

// The scheduler tests drive gocron with one fake clock shared by every Scheduler of a test (the
// hosts of a cluster agree on the time; clock skew is the Coordinator's business). They wait on
// what the Schedulers report (the Observe hook), never on sleeps.

const envRedis = "TRELLIS_TEST_REDIS"

// backend opens n Coordinators onto one fresh store, as n hosts of a cluster hold them.
type backend struct {
	name string
	open func(t *testing.T, n int) []recurring.Coordinator
}

func localBackend() backend {
	return backend{"local", func(t *testing.T, n int) []recurring.Coordinator {
		c, err := locallock.Open(filepath.Join(t.TempDir(), "recurring.db"))
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		out := make([]recurring.Coordinator, n)
		for i := range out {
			out[i] = c
		}
		return out
	}}
}

func redisBackend() backend {
	return backend{"redis", func(t *testing.T, n int) []recurring.Coordinator {
		u := os.Getenv(envRedis)
		if u == "" {
			t.Skipf("%s is not set; run `eval \"$(scripts/services.sh start)\"` (or export %s=redis://127.0.0.1:6379/0) to test the cluster against a real Redis", envRedis, envRedis)
		}
		opts, err := redis.ParseURL(u)
		require.NoError(t, err)
		prefix := "trellis:test:recurring:" + randHex() + ":"
		admin := redis.NewClient(opts)
		t.Cleanup(func() {
			deleteKeys(admin, prefix)
			_ = admin.Close()
		})
		out := make([]recurring.Coordinator, n)
		for i := range out {
			o, err := redis.ParseURL(u) // a client per host, with options of its own
			require.NoError(t, err)
			c := redis.NewClient(o)
			t.Cleanup(func() { _ = c.Close() })
			out[i] = redislock.New(c, prefix)
		}
		return out
	}}
}

func deleteKeys(c *redis.Client, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 500 {
			_ = c.Unlink(ctx, keys...).Err()
			keys = keys[:0]
		}
	}
	if len(keys) > 0 {
		_ = c.Unlink(ctx, keys...).Err()
	}
}

func randHex() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// forBackends runs f on the embedded backend and, when TRELLIS_TEST_REDIS is set, on Redis.
func forBackends(t *testing.T, f func(t *testing.T, b backend)) {
	for _, b := range []backend{localBackend(), redisBackend()} {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			f(t, b)
		})
	}
}

// event is one outcome a host reported for a tick.
type event struct {
	host    int
	tick    recurring.Tick
	outcome string
}

type fireFunc func(ctx context.Context, host int, t recurring.Tick) error

// bundle is one test's cluster: Schedulers on a shared fake clock and what they did.
type bundle struct {
	t      *testing.T
	ctx    context.Context
	clock  *clockwork.FakeClock
	coords []recurring.Coordinator
	scheds []*recurring.Scheduler

	mu     sync.Mutex
	events []event
	fired  []event // Fire calls, at their start
	early  []string
	fire   fireFunc
}

// start is where every test's clock begins: 30 s into a minute.
var start = utc("2030-05-06 07:08:30")

func setup(t *testing.T, b backend, hosts int) *bundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	bu := &bundle{t: t, ctx: ctx, clock: clockwork.NewFakeClockAt(start), coords: b.open(t, hosts)}
	for i := range hosts {
		bu.scheds = append(bu.scheds, bu.newScheduler(i))
	}
	return bu
}

// newScheduler makes host i's Scheduler (again, after a restart) and stops it at the end.
func (b *bundle) newScheduler(host int) *recurring.Scheduler {
	s, err := recurring.New(recurring.Options{
		Coordinator: b.coords[host],
		Clock:       b.clock,
		Fire: func(ctx context.Context, t recurring.Tick) error {
			b.mu.Lock()
			if now := b.clock.Now(); now.Before(t.At) {
				b.early = append(b.early, fmt.Sprintf("%s at %s ran at %s", t.Template, t.At, now))
			}
			b.fired = append(b.fired, event{host: host, tick: t})
			f := b.fire
			b.mu.Unlock()
			if f != nil {
				return f(ctx, host, t)
			}
			return nil
		},
	})
	require.NoError(b.t, err)
	recurring.Observe(s, func(t recurring.Tick, outcome string) {
		b.mu.Lock()
		b.events = append(b.events, event{host: host, tick: t, outcome: outcome})
		b.mu.Unlock()
	})
	b.t.Cleanup(func() {
		// A test that failed may leave a Fire hanging: give up on it after a while.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Stop(ctx)
	})
	return s
}

func (b *bundle) startAll(templates ...recurring.Template) {
	for _, s := range b.scheds {
		require.NoError(b.t, s.Start(b.ctx))
		require.NoError(b.t, s.Sync(b.ctx, templates))
	}
}

// advanceTo moves the clock to at once timers timers are armed: one gocron job per host and
// distinct schedule.
func (b *bundle) advanceTo(at time.Time, timers int) {
	b.t.Helper()
	require.NoError(b.t, b.clock.BlockUntilContext(b.ctx, timers), "gocron must arm %d timers", timers)
	require.False(b.t, at.Before(b.clock.Now()))
	b.clock.Advance(at.Sub(b.clock.Now()))
}

func final(outcome string) bool { return outcome != recurring.OutcomeWaiting }

// waitTick waits until hosts hosts reported a final outcome for the tick and returns the
// outcomes by host.
func (b *bundle) waitTick(tpl string, at time.Time, hosts int) map[int]string {
	b.t.Helper()
	var got map[int]string
	require.Eventually(b.t, func() bool {
		got = b.outcomes(tpl, at)
		return len(got) >= hosts
	}, 20*time.Second, 2*time.Millisecond, "tick %s of %s: want outcomes from %d hosts", at, tpl, hosts)
	return got
}

func (b *bundle) outcomes(tpl string, at time.Time) map[int]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	got := map[int]string{}
	for _, e := range b.events {
		if e.tick.Template == tpl && e.tick.At.Equal(at) && final(e.outcome) {
			_, dup := got[e.host]
			require.False(b.t, dup, "host %d reported tick %s of %s twice", e.host, at, tpl)
			got[e.host] = e.outcome
		}
	}
	return got
}

func (b *bundle) firedOf(tpl string) []recurring.Tick {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []recurring.Tick
	for _, e := range b.fired {
		if e.tick.Template == tpl {
			out = append(out, e.tick)
		}
	}
	return out
}

func (b *bundle) sawOutcome(tpl string, at time.Time, outcome string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.events {
		if e.tick.Template == tpl && e.tick.At.Equal(at) && e.outcome == outcome {
			return true
		}
	}
	return false
}

func (b *bundle) noneEarly() {
	b.mu.Lock()
	defer b.mu.Unlock()
	require.Empty(b.t, b.early, "ticks must never run before their scheduled time")
}

func count(m map[int]string, outcome string) int {
	n := 0
	for _, o := range m {
		if o == outcome {
			n++
		}
	}
	return n
}

func minute(m int) time.Time { return utc("2030-05-06 07:00:00").Add(time.Duration(m) * time.Minute) }

// One host: a 5-field cron ticks at its times with At = the scheduled time.
func TestCronFiveFields(t *testing.T) {
	t.Parallel()
	b := setup(t, localBackend(), 1)
	tpl := recurring.Template{FullName: "tasks.EveryMinute", Cron: "* * * * *"}
	b.startAll(tpl)
	for m := 9; m <= 11; m++ {
		b.advanceTo(minute(m), 1)
		require.Equal(t, map[int]string{0: recurring.OutcomeFired}, b.waitTick(tpl.FullName, minute(m), 1))
	}
	require.Equal(t, []recurring.Tick{
		{Template: tpl.FullName, At: minute(9)}, {Template: tpl.FullName, At: minute(10)}, {Template: tpl.FullName, At: minute(11)},
	}, b.firedOf(tpl.FullName))
	b.noneEarly()
}

// A 6-field cron has seconds; a timer that goes off late still reports the scheduled time.
func TestCronSixFields(t *testing.T) {
	t.Parallel()
	b := setup(t, localBackend(), 1)
	tpl := recurring.Template{FullName: "tasks.EveryTenSeconds", Cron: "*/10 * * * * *"}
	b.startAll(tpl)
	for _, at := range []time.Time{start.Add(10 * time.Second), start.Add(20 * time.Second)} {
		b.advanceTo(at, 1)
		b.waitTick(tpl.FullName, at, 1)
	}
	late := start.Add(30*time.Second + 700*time.Millisecond)
	b.advanceTo(late, 1)
	b.waitTick(tpl.FullName, start.Add(30*time.Second), 1)
	require.Len(t, b.firedOf(tpl.FullName), 3)
	b.noneEarly()
}

// A cron in a time zone ticks at its local times.
func TestCronTimezone(t *testing.T) {
	t.Parallel()
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	b := setup(t, localBackend(), 1)
	tpl := recurring.Template{FullName: "tasks.NineInShanghai", Cron: "0 9 * * *", Location: shanghai}
	b.startAll(tpl)
	at := utc("2030-05-07 01:00:00") // 09:00 in Shanghai
	b.advanceTo(at.Add(-time.Second), 1)
	b.advanceTo(at, 1)
	b.waitTick(tpl.FullName, at, 1)
	require.Equal(t, []recurring.Tick{{Template: tpl.FullName, At: at}}, b.firedOf(tpl.FullName))
	b.noneEarly()
}

// Interval ticks are multiples of the interval since the epoch, on hosts that started at
// different times alike, and each runs once.
func TestIntervalAlignedAcrossHosts(t *testing.T) {
	forBackends(t, func(t *testing.T, be backend) {
		b := setup(t, be, 2)
		tpl := recurring.Template{FullName: "tasks.Every10m", Interval: 10 * time.Minute}
		require.NoError(t, b.scheds[0].Start(b.ctx))
		require.NoError(t, b.scheds[0].Sync(b.ctx, []recurring.Template{tpl}))
		b.advanceTo(minute(10), 1) // not 07:18:30, 10 minutes after the start
		require.Equal(t, map[int]string{0: recurring.OutcomeFired}, b.waitTick(tpl.FullName, minute(10), 1))

		b.advanceTo(minute(13).Add(3*time.Second), 1)
		require.NoError(t, b.scheds[1].Start(b.ctx)) // a host joining at 07:13:03
		require.NoError(t, b.scheds[1].Sync(b.ctx, []recurring.Template{tpl}))
		b.advanceTo(minute(20), 2)
		got := b.waitTick(tpl.FullName, minute(20), 2)
		require.Equal(t, 1, count(got, recurring.OutcomeFired), "%v", got)
		require.Equal(t, 1, count(got, recurring.OutcomeElsewhere), "%v", got)
		require.Len(t, b.firedOf(tpl.FullName), 2)
		b.noneEarly()
	})
}

// Three hosts, several templates: every tick runs exactly once in the cluster, and every host
// saw it.
func TestClusterRunsEachTickOnce(t *testing.T) {
	forBackends(t, func(t *testing.T, be backend) {
		b := setup(t, be, 3)
		tpls := []recurring.Template{
			{FullName: "tasks.A", Cron: "* * * * *"},
			{FullName: "tasks.B", Cron: "*/30 * * * * *", Concurrency: recurring.ConcurrencyParallel},
			{FullName: "tasks.C", Interval: time.Minute, Concurrency: recurring.ConcurrencyDiscard},
			{FullName: "tasks.D", Interval: 30 * time.Second},
		}
		b.startAll(tpls...)
		want := map[string]int{}
		for step := 1; step <= 6; step++ {
			at := start.Add(time.Duration(step) * 30 * time.Second)
			b.advanceTo(at, 3*len(tpls))
			for _, tpl := range tpls {
				if at.Second() != 0 && (tpl.FullName == "tasks.A" || tpl.FullName == "tasks.C") {
					continue
				}
				got := b.waitTick(tpl.FullName, at, 3)
				require.Equal(t, 1, count(got, recurring.OutcomeFired), "%s at %s: %v", tpl.FullName, at, got)
				require.Equal(t, 2, count(got, recurring.OutcomeElsewhere), "%s at %s: %v", tpl.FullName, at, got)
				want[tpl.FullName]++
			}
		}
		for _, tpl := range tpls {
			require.Len(t, b.firedOf(tpl.FullName), want[tpl.FullName], tpl.FullName)
		}
		require.Equal(t, map[string]int{"tasks.A": 3, "tasks.B": 6, "tasks.C": 3, "tasks.D": 6}, want)
		b.noneEarly()
	})
}

// After downtime, fireOnce runs one catch-up tick at the latest missed time; skip runs none; a
// template never ticked before has nothing to catch up. Both orders of Start and Sync.
func TestMisfireAfterDowntime(t *testing.T) {
	for _, order := range []string{"StartThenSync", "SyncThenStart"} {
		t.Run(order, func(t *testing.T) {
			forBackends(t, func(t *testing.T, be backend) {
				b := setup(t, be, 1)
				once := recurring.Template{FullName: "tasks.Once", Cron: "* * * * *"}
				skip := recurring.Template{FullName: "tasks.Skip", Cron: "* * * * *", Misfire: recurring.MisfireSkip}
				fresh := recurring.Template{FullName: "tasks.Fresh", Cron: "* * * * *"}
				b.startAll(once, skip)
				b.advanceTo(minute(9), 1) // one schedule, one timer
				b.waitTick(once.FullName, minute(9), 1)
				b.waitTick(skip.FullName, minute(9), 1)
				require.NoError(t, b.scheds[0].Stop(b.ctx))

				b.clock.Advance(minute(19).Add(30 * time.Second).Sub(b.clock.Now())) // down until 07:19:30
				s := b.newScheduler(0)
				all := []recurring.Template{once, skip, fresh}
				if order == "StartThenSync" {
					require.NoError(t, s.Start(b.ctx))
					require.NoError(t, s.Sync(b.ctx, all))
				} else {
					require.NoError(t, s.Sync(b.ctx, all))
					require.NoError(t, s.Start(b.ctx))
				}
				require.Equal(t, map[int]string{0: recurring.OutcomeFired}, b.waitTick(once.FullName, minute(19), 1))
				require.Equal(t, []recurring.Tick{
					{Template: once.FullName, At: minute(9)},
					{Template: once.FullName, At: minute(19), CatchUp: true},
				}, b.firedOf(once.FullName), "one catch-up run for ten missed ticks, at the latest")

				b.advanceTo(minute(20), 1)
				for _, tpl := range all {
					b.waitTick(tpl.FullName, minute(20), 1)
				}
				require.Equal(t, []recurring.Tick{{Template: skip.FullName, At: minute(9)}, {Template: skip.FullName, At: minute(20)}},
					b.firedOf(skip.FullName), "skip: no catch-up")
				require.Equal(t, []recurring.Tick{{Template: fresh.FullName, At: minute(20)}}, b.firedOf(fresh.FullName),
					"a template never ticked before has nothing to catch up")
				require.Len(t, b.firedOf(once.FullName), 3)
				b.noneEarly()
			})
		})
	}
}

// A catch-up tick runs once in the cluster even when every host restarts at once.
func TestCatchUpOnceInCluster(t *testing.T) {
	forBackends(t, func(t *testing.T, be backend) {
		b := setup(t, be, 3)
		tpl := recurring.Template{FullName: "tasks.Cluster", Interval: time.Minute}
		b.startAll(tpl)
		b.advanceTo(minute(9), 3)
		b.waitTick(tpl.FullName, minute(9), 3)
		for _, s := range b.scheds {
			require.NoError(t, s.Stop(b.ctx))
		}
		b.clock.Advance(minute(15).Add(10 * time.Second).Sub(b.clock.Now()))
		// All hosts come back at once; each may try the catch-up (a host that starts after the
		// claim sees the new last tick and has nothing to catch up).
		var wg sync.WaitGroup
		for i := range b.scheds {
			b.scheds[i] = b.newScheduler(i)
			wg.Add(1)
			go func() {
				defer wg.Done()
				assert.NoError(t, b.scheds[i].Start(b.ctx))
				assert.NoError(t, b.scheds[i].Sync(b.ctx, []recurring.Template{tpl}))
			}()
		}
		wg.Wait()
		b.advanceTo(minute(16), 3)
		b.waitTick(tpl.FullName, minute(16), 3)
		// The catch-up runs as the hosts start, on its own goroutine: its fired outcome may come
		// after the next tick's outcomes, so wait for it rather than read it once.
		var got map[int]string
		require.Eventually(t, func() bool {
			got = b.outcomes(tpl.FullName, minute(15))
			return count(got, recurring.OutcomeFired) >= 1
		}, 20*time.Second, 2*time.Millisecond, "no host fired the catch-up")
		require.Equal(t, 1, count(got, recurring.OutcomeFired), "%v", got)
		require.ElementsMatch(t, []recurring.Tick{
			{Template: tpl.FullName, At: minute(9)},
			{Template: tpl.FullName, At: minute(15), CatchUp: true},
			{Template: tpl.FullName, At: minute(16)},
		}, b.firedOf(tpl.FullName), "each tick once, the catch-up included (it may finish after the next tick)")
	})
}

// blocker makes Fire of chosen ticks block until released, and counts runs in progress.
type blocker struct {
	mu       sync.Mutex
	hold     map[time.Time]chan struct{}
	running  int
	maxRun   int
	finished map[time.Time]bool
}

func newBlocker(ats ...time.Time) *blocker {
	bl := &blocker{hold: map[time.Time]chan struct{}{}, finished: map[time.Time]bool{}}
	for _, at := range ats {
		bl.hold[at] = make(chan struct{})
	}
	return bl
}

func (bl *blocker) fire(ctx context.Context, _ int, t recurring.Tick) error {
	bl.mu.Lock()
	bl.running++
	bl.maxRun = max(bl.maxRun, bl.running)
	ch := bl.hold[t.At]
	bl.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
	bl.mu.Lock()
	bl.running--
	bl.finished[t.At] = true
	bl.mu.Unlock()
	return nil
}

func (bl *blocker) release(at time.Time) { close(bl.hold[at]) }

func (bl *blocker) state() (running, maxRun int) {
	bl.mu.Lock()
	defer bl.mu.Unlock()
	return bl.running, bl.maxRun
}

// serial / discard / parallel with a slow run, across two hosts.
func TestConcurrencyAcrossHosts(t *testing.T) {
	forBackends(t, func(t *testing.T, be backend) {
		for _, policy := range []string{recurring.ConcurrencySerial, recurring.ConcurrencyDiscard, recurring.ConcurrencyParallel} {
			t.Run(policy, func(t *testing.T) {
				b := setup(t, be, 2)
				tpl := recurring.Template{FullName: "tasks.Slow" + policy, Interval: time.Minute, Concurrency: policy}
				held := []time.Time{minute(9)}
				if policy == recurring.ConcurrencyParallel {
					held = append(held, minute(10))
				}
				bl := newBlocker(held...)
				b.fire = bl.fire
				b.startAll(tpl)
				b.advanceTo(minute(9), 2)
				require.Eventually(t, func() bool { r, _ := bl.state(); return r == 1 }, 10*time.Second, time.Millisecond, "the first tick runs (and hangs)")

				b.advanceTo(minute(10), 2) // the second tick comes while the first still runs
				switch policy {
				case recurring.ConcurrencySerial:
					require.Eventually(t, func() bool { return b.sawOutcome(tpl.FullName, minute(10), recurring.OutcomeWaiting) },
						10*time.Second, time.Millisecond, "the second tick waits for the first")
					require.Len(t, b.firedOf(tpl.FullName), 1, "and has not started")
					bl.release(minute(9))
					got := b.waitTick(tpl.FullName, minute(10), 2)
					require.Equal(t, 1, count(got, recurring.OutcomeFired), "%v", got)
					_, maxRun := bl.state()
					require.Equal(t, 1, maxRun, "serial runs never overlap")
				case recurring.ConcurrencyDiscard:
					got := b.waitTick(tpl.FullName, minute(10), 2)
					require.Equal(t, 1, count(got, recurring.OutcomeDiscarded), "%v", got)
					require.Equal(t, 1, count(got, recurring.OutcomeElsewhere), "%v", got)
					bl.release(minute(9))
					require.Eventually(t, func() bool { r, _ := bl.state(); return r == 0 }, 10*time.Second, time.Millisecond)
					b.advanceTo(minute(11), 2)
					b.waitTick(tpl.FullName, minute(11), 2)
					require.Equal(t, []recurring.Tick{{Template: tpl.FullName, At: minute(9)}, {Template: tpl.FullName, At: minute(11)}},
						b.firedOf(tpl.FullName), "the discarded tick never ran; the next one does")
				case recurring.ConcurrencyParallel:
					require.Eventually(t, func() bool { r, _ := bl.state(); return r == 2 }, 10*time.Second, time.Millisecond,
						"the second tick runs beside the first")
					bl.release(minute(9))
					bl.release(minute(10))
					got := b.waitTick(tpl.FullName, minute(10), 2)
					require.Equal(t, 1, count(got, recurring.OutcomeFired), "%v", got)
				}
				b.noneEarly()
			})
		}
	})
}

// Sync adds, removes and reschedules without a restart; a running tick of a removed template
// finishes.
func TestSyncAddRemoveEdit(t *testing.T) {
	t.Parallel()
	b := setup(t, localBackend(), 1)
	a := recurring.Template{FullName: "tasks.A", Cron: "* * * * *", Version: "1"}
	gone := recurring.Template{FullName: "tasks.Gone", Cron: "* * * * *"}
	bl := newBlocker(minute(9))
	b.fire = func(ctx context.Context, host int, t recurring.Tick) error {
		if t.Template == gone.FullName {
			return bl.fire(ctx, host, t)
		}
		return nil
	}
	b.startAll(a, gone)
	b.advanceTo(minute(9), 1) // one schedule, one timer
	b.waitTick(a.FullName, minute(9), 1)
	require.Eventually(t, func() bool { r, _ := bl.state(); return r == 1 }, 10*time.Second, time.Millisecond)

	// Disable Gone (still running) and move A to even minutes.
	a2 := a
	a2.Cron, a2.Version = "*/2 * * * *", "2"
	added := recurring.Template{FullName: "tasks.Added", Interval: time.Minute}
	require.NoError(t, b.scheds[0].Sync(b.ctx, []recurring.Template{a2, added}))
	bl.release(minute(9))
	require.Eventually(t, func() bool { return b.sawOutcome(gone.FullName, minute(9), recurring.OutcomeFired) }, 10*time.Second, time.Millisecond,
		"the running tick of a removed template finishes")

	for m := 10; m <= 12; m++ {
		b.advanceTo(minute(m), 2)
		b.waitTick(added.FullName, minute(m), 1)
	}
	b.waitTick(a.FullName, minute(12), 1)
	require.Equal(t, []recurring.Tick{{Template: a.FullName, At: minute(9)}, {Template: a.FullName, At: minute(10)}, {Template: a.FullName, At: minute(12)}},
		b.firedOf(a.FullName), "the edited cron takes the new schedule (no 07:11)")
	require.Equal(t, []recurring.Tick{{Template: gone.FullName, At: minute(9)}}, b.firedOf(gone.FullName), "a disabled template stops ticking")
	require.Len(t, b.firedOf(added.FullName), 3)

	// The same list again changes nothing; an empty one removes everything.
	require.NoError(t, b.scheds[0].Sync(b.ctx, []recurring.Template{a2, added}))
	b.advanceTo(minute(13), 2)
	b.waitTick(added.FullName, minute(13), 1)
	require.NoError(t, b.scheds[0].Sync(b.ctx, nil))
	require.NoError(t, b.clock.BlockUntilContext(b.ctx, 0))
	b.clock.Advance(time.Hour)
	require.NoError(t, b.scheds[0].Sync(b.ctx, []recurring.Template{added})) // re-enabled: the missed hour is caught up once
	want := minute(13).Add(time.Hour)
	b.waitTick(added.FullName, want, 1)
	require.Equal(t, recurring.Tick{Template: added.FullName, At: want, CatchUp: true}, b.firedOf(added.FullName)[4])
	b.noneEarly()
}

// Templates with the same schedule share one gocron job (one timer), each still ticking on its
// own; the job goes with the schedule's last template.
func TestTemplatesShareTimers(t *testing.T) {
	t.Parallel()
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	b := setup(t, localBackend(), 1)
	var all, shanghaiOnly []recurring.Template
	for i := range 30 {
		all = append(all, recurring.Template{FullName: fmt.Sprintf("tasks.Utc%02d", i), Cron: "* * * * *"})
		sh := recurring.Template{FullName: fmt.Sprintf("tasks.Sh%02d", i), Cron: "*  * * * *", Location: shanghai}
		all = append(all, sh)
		shanghaiOnly = append(shanghaiOnly, sh)
	}
	all = append(all, recurring.Template{FullName: "tasks.Every", Interval: time.Minute})
	b.startAll(all...)
	require.Equal(t, 3, recurring.GocronJobs(b.scheds[0]), "UTC cron, Shanghai cron, 1m interval")
	b.advanceTo(minute(9), 3)
	for _, tpl := range all {
		require.Equal(t, map[int]string{0: recurring.OutcomeFired}, b.waitTick(tpl.FullName, minute(9), 1), tpl.FullName)
	}
	require.NoError(t, b.scheds[0].Sync(b.ctx, shanghaiOnly))
	require.Equal(t, 1, recurring.GocronJobs(b.scheds[0]))
	b.advanceTo(minute(10), 1)
	for _, tpl := range shanghaiOnly {
		b.waitTick(tpl.FullName, minute(10), 1)
	}
	require.Len(t, b.firedOf("tasks.Utc00"), 1, "removed with its schedule")
	require.Len(t, b.firedOf("tasks.Sh00"), 2)
}

// An edit that keeps the tick times keeps the timer and applies the new policy from the next
// tick.
func TestEditKeepingSchedule(t *testing.T) {
	t.Parallel()
	b := setup(t, localBackend(), 1)
	tpl := recurring.Template{FullName: "tasks.Edited", Cron: "* * * * *", Version: "1"} // serial: the run holds the lock
	bl := newBlocker(minute(9))
	b.fire = bl.fire
	b.startAll(tpl)
	b.advanceTo(minute(9), 1)
	require.Eventually(t, func() bool { r, _ := bl.state(); return r == 1 }, 10*time.Second, time.Millisecond)

	edited := tpl
	edited.Cron, edited.Concurrency, edited.Version = "*  *  * * *", recurring.ConcurrencyDiscard, "2"
	require.NoError(t, b.scheds[0].Sync(b.ctx, []recurring.Template{edited}))
	require.Equal(t, 1, recurring.GocronJobs(b.scheds[0]))
	b.advanceTo(minute(10), 1)
	require.Equal(t, map[int]string{0: recurring.OutcomeDiscarded}, b.waitTick(tpl.FullName, minute(10), 1),
		"discard applies while the 07:09 run still goes")
	bl.release(minute(9))
	b.advanceTo(minute(11), 1)
	require.Equal(t, map[int]string{0: recurring.OutcomeFired}, b.waitTick(tpl.FullName, minute(11), 1))
	require.Len(t, b.firedOf(tpl.FullName), 2)
}

// Bad templates are refused, all at once, and nothing changes.
func TestSyncRejectsBadTemplates(t *testing.T) {
	t.Parallel()
	b := setup(t, localBackend(), 1)
	good := recurring.Template{FullName: "tasks.Good", Cron: "* * * * *"}
	b.startAll(good)
	for _, tc := range []struct {
		tpl  recurring.Template
		want string
		is   error
	}{
		{recurring.Template{Cron: "* * * * *"}, "FullName is empty", recurring.ErrInvalidTemplate},
		{recurring.Template{FullName: "tasks.X"}, "neither cron nor interval", recurring.ErrInvalidTemplate},
		{recurring.Template{FullName: "tasks.X", Cron: "* * * * *", Interval: time.Minute}, "both cron", recurring.ErrInvalidTemplate},
		{recurring.Template{FullName: "tasks.X", Interval: -time.Minute}, "negative", recurring.ErrInvalidTemplate},
		{recurring.Template{FullName: "tasks.X", Interval: time.Millisecond}, "shorter than 1s", recurring.ErrInvalidTemplate},
		{recurring.Template{FullName: "tasks.X", Cron: "61 * * * *"}, `minute field "61"`, recurring.ErrInvalidCron},
		{recurring.Template{FullName: "tasks.X", Cron: "* * * * *", Misfire: "later"}, `misfire "later" is unknown`, recurring.ErrInvalidTemplate},
		{recurring.Template{FullName: "tasks.X", Cron: "* * * * *", Concurrency: "queue"}, `concurrency "queue" is unknown`, recurring.ErrInvalidTemplate},
	} {
		err := b.scheds[0].Sync(b.ctx, []recurring.Template{tc.tpl})
		require.ErrorIs(t, err, tc.is, tc.want)
		require.Contains(t, err.Error(), tc.want)
	}
	err := b.scheds[0].Sync(b.ctx, []recurring.Template{good, {FullName: "tasks.Y"}, good})
	require.ErrorIs(t, err, recurring.ErrInvalidTemplate)
	require.Contains(t, err.Error(), "listed twice")
	require.Contains(t, err.Error(), `"tasks.Y"`, "every problem is reported")
	// Nothing changed: Good still ticks.
	b.advanceTo(minute(9), 1)
	b.waitTick(good.FullName, minute(9), 1)
}

// Stop waits for running Fire calls, is safe twice, and a stopped Scheduler refuses Start and
// Sync; a Stop whose context ends first cancels the runs and says so.
func TestStop(t *testing.T) {
	t.Parallel()
	b := setup(t, localBackend(), 2)
	tpl := recurring.Template{FullName: "tasks.Long", Interval: time.Minute, Concurrency: recurring.ConcurrencyParallel}
	bl := newBlocker(minute(9))
	b.fire = bl.fire
	b.startAll(tpl)
	require.NoError(t, b.scheds[0].Start(b.ctx), "Start twice is fine")
	b.advanceTo(minute(9), 2)
	require.Eventually(t, func() bool { r, _ := bl.state(); return r == 1 }, 10*time.Second, time.Millisecond)
	host := b.firedOf(tpl.FullName)[0]
	runner := b.hostOf(host)

	stopped := make(chan error, 1)
	go func() { stopped <- b.scheds[runner].Stop(b.ctx) }()
	bl.release(minute(9))
	require.NoError(t, <-stopped)
	bl.mu.Lock()
	require.True(t, bl.finished[minute(9)], "Stop returns only after the running tick finished")
	bl.mu.Unlock()
	require.NoError(t, b.scheds[runner].Stop(b.ctx), "Stop twice is fine")
	require.ErrorIs(t, b.scheds[runner].Start(b.ctx), recurring.ErrStopped)
	require.ErrorIs(t, b.scheds[runner].Sync(b.ctx, []recurring.Template{tpl}), recurring.ErrStopped)

	// The other host goes on alone, and its Stop gives up on a hung run when told to.
	other := 1 - runner
	bl2 := newBlocker(minute(10))
	b.mu.Lock()
	b.fire = bl2.fire
	b.mu.Unlock()
	b.advanceTo(minute(10), 1)
	require.Eventually(t, func() bool { r, _ := bl2.state(); return r == 1 }, 10*time.Second, time.Millisecond)
	ctx, cancel := context.WithTimeout(b.ctx, 50*time.Millisecond)
	defer cancel()
	err := b.scheds[other].Stop(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Contains(t, err.Error(), "1 running ticks did not finish")
	require.Eventually(t, func() bool { r, _ := bl2.state(); return r == 0 }, 10*time.Second, time.Millisecond,
		"the hung run's context is cancelled")
}

func (b *bundle) hostOf(t recurring.Tick) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.fired {
		if e.tick == t {
			return e.host
		}
	}
	b.t.Fatalf("tick %v never fired", t)
	return -1
}

func TestNewRejectsBadOptions(t *testing.T) {
	t.Parallel()
	coord := localBackend().open(t, 1)[0]
	fire := func(context.Context, recurring.Tick) error { return nil }
	for _, tc := range []struct {
		o    recurring.Options
		want string
	}{
		{recurring.Options{Fire: fire}, "Coordinator is nil"},
		{recurring.Options{Coordinator: coord}, "Fire is nil"},
		{recurring.Options{Coordinator: coord, Fire: fire, RunLockTTL: time.Millisecond}, "RunLockTTL"},
	} {
		_, err := recurring.New(tc.o)
		require.ErrorIs(t, err, recurring.ErrInvalidOptions)
		require.Contains(t, err.Error(), tc.want)
	}
	s, err := recurring.New(recurring.Options{Coordinator: coord, Fire: fire})
	require.NoError(t, err)
	require.NoError(t, s.Stop(context.Background()), "stopping a Scheduler never started is fine")
}

// A failing or panicking Fire is logged; the next tick runs as usual.
func TestFireErrorsDoNotStopTicks(t *testing.T) {
	t.Parallel()
	b := setup(t, localBackend(), 1)
	tpl := recurring.Template{FullName: "tasks.Flaky", Cron: "* * * * *"}
	b.fire = func(_ context.Context, _ int, t recurring.Tick) error {
		if t.At.Equal(minute(9)) {
			panic("boom")
		}
		return fmt.Errorf("task failed")
	}
	b.startAll(tpl)
	for m := 9; m <= 11; m++ {
		b.advanceTo(minute(m), 1)
		require.Equal(t, map[int]string{0: recurring.OutcomeFired}, b.waitTick(tpl.FullName, minute(m), 1))
	}
}

// Next is the template's next tick: after the clock and after the tick being handled; nothing
// for a template not scheduled (removed, or never added).
func TestNext(t *testing.T) {
	t.Parallel()
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	b := setup(t, localBackend(), 1)
	s := b.scheds[0]
	cronTpl := recurring.Template{FullName: "tasks.NineInShanghai", Cron: "0 9 * * *", Location: shanghai}
	every := recurring.Template{FullName: "tasks.Every10m", Interval: 10 * time.Minute}
	b.startAll(cronTpl, every)

	n, ok := s.Next(cronTpl.FullName)
	require.True(t, ok)
	require.Equal(t, utc("2030-05-07 01:00:00"), n, "09:00 in Shanghai, the next day")
	n, ok = s.Next(every.FullName)
	require.True(t, ok)
	require.Equal(t, minute(10), n, "the next multiple of ten minutes since the epoch")

	b.advanceTo(minute(10), 2)
	b.waitTick(every.FullName, minute(10), 1)
	n, _ = s.Next(every.FullName)
	require.Equal(t, minute(20), n)

	_, ok = s.Next("tasks.Unknown")
	require.False(t, ok)
	require.NoError(t, s.Sync(b.ctx, []recurring.Template{cronTpl}))
	_, ok = s.Next(every.FullName)
	require.False(t, ok, "removed by a sync")
}
