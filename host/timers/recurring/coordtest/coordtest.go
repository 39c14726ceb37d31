// Package coordtest is the one conformance suite every recurring.Coordinator backend runs
// (redislock on Redis, locallock embedded), so both keep the promises of the interface's doc
// comment: one winner per (template, tick) however many hosts race, a last tick that only moves
// forward and survives restarts, a run lock that excludes every other holder until released,
// and ErrInvalidArgument for bad input.
//
// It is a non-test package so each backend's own _test.go calls Run with the hooks only it can
// provide. It owns no backend and must not import one. Waits are bounded by conditions, never
// fixed sleeps; the one negative check (a renewed lock stays held) watches a short window and
// can only fail, never pass, on a slow machine.
package coordtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/timers/recurring"
)

// Backend is what a backend's test gives Run.
type Backend struct {
	// Open returns n handles onto one fresh, empty store, as n hosts of one cluster would hold
	// them (an embedded backend returns its one handle n times). Required.
	Open func(t *testing.T, n int) []recurring.Coordinator
	// Reopen returns a handle onto c's store as after a restart of its host; c is not used
	// again. Nil skips the durability subtest.
	Reopen func(t *testing.T, c recurring.Coordinator) recurring.Coordinator
}

type env struct {
	t   *testing.T
	ctx context.Context
	cs  []recurring.Coordinator
}

func setup(t *testing.T, b Backend, n int) *env {
	t.Helper()
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	cs := b.Open(t, n)
	require.Len(t, cs, n, "Open must return the handles asked for")
	return &env{t: t, ctx: ctx, cs: cs}
}

func name(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "tasks." + prefix + hex.EncodeToString(b)
}

var base = time.Date(2030, 3, 4, 5, 6, 0, 0, time.UTC)

// Run runs every subtest against b.
func Run(t *testing.T, b Backend) {
	require.NotNil(t, b.Open, "Backend.Open is required")
	t.Run("ClaimOncePerTick", func(t *testing.T) { testClaimOnce(setup(t, b, 3)) })
	t.Run("ClaimIndependentKeys", func(t *testing.T) { testClaimIndependent(setup(t, b, 2)) })
	t.Run("LastTickMovesForward", func(t *testing.T) { testLastTick(setup(t, b, 2)) })
	t.Run("RunLockExcludes", func(t *testing.T) { testRunLock(setup(t, b, 2)) })
	t.Run("RunLockRenewed", func(t *testing.T) { testRunLockRenewed(setup(t, b, 2)) })
	t.Run("RunLockContention", func(t *testing.T) { testRunLockContention(setup(t, b, 3)) })
	t.Run("BadInput", func(t *testing.T) { testBadInput(setup(t, b, 1)) })
	t.Run("CancelledContext", func(t *testing.T) { testCancelled(setup(t, b, 1)) })
	t.Run("Durable", func(t *testing.T) {
		if b.Reopen == nil {
			t.Skip("backend gives no Reopen hook")
		}
		testDurable(setup(t, b, 1), b)
	})
}

// Many hosts racing for the same ticks: exactly one wins each.
func testClaimOnce(e *env) {
	tpl := name("Claim")
	const ticks, perHandle = 20, 8
	var wins [ticks]atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, c := range e.cs {
		for range perHandle {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for i := range ticks {
					ok, err := c.ClaimTick(e.ctx, tpl, base.Add(time.Duration(i)*time.Minute))
					if !ok || err != nil {
						assert.NoError(e.t, err) // not require: this is not the test's goroutine
						continue
					}
					wins[i].Add(1)
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	for i := range ticks {
		require.EqualValues(e.t, 1, wins[i].Load(), "tick %d must be won by exactly one of %d claimers", i, len(e.cs)*perHandle)
	}
	for _, c := range e.cs {
		ok, err := c.ClaimTick(e.ctx, tpl, base)
		require.NoError(e.t, err)
		require.False(e.t, ok, "a tick already claimed stays claimed for every host")
	}
}

// Claims of one template do not block another template's, nor another tick's; sub-second
// times are distinct ticks.
func testClaimIndependent(e *env) {
	a, b := name("A"), name("B")
	claim := func(c recurring.Coordinator, tpl string, at time.Time) bool {
		ok, err := c.ClaimTick(e.ctx, tpl, at)
		require.NoError(e.t, err)
		return ok
	}
	require.True(e.t, claim(e.cs[0], a, base))
	require.True(e.t, claim(e.cs[1], b, base), "same time, other template: its own claim")
	require.True(e.t, claim(e.cs[1], a, base.Add(time.Millisecond)), "1ms later is another tick")
	require.True(e.t, claim(e.cs[0], a, base.Add(time.Millisecond+time.Nanosecond)), "1ns later is another tick")
	require.False(e.t, claim(e.cs[0], b, base))
	require.True(e.t, claim(e.cs[0], a, base.Add(-time.Hour)), "an older tick nobody claimed can be claimed")
}

// LastTick is the latest claimed tick, at full precision, seen by every host, never moved back.
func testLastTick(e *env) {
	tpl := name("Last")
	_, ok, err := e.cs[0].LastTick(e.ctx, tpl)
	require.NoError(e.t, err)
	require.False(e.t, ok, "a template never claimed has no last tick")

	t2 := base.Add(2*time.Minute + 123456789*time.Nanosecond)
	t1 := base.Add(time.Minute)
	for _, at := range []time.Time{t2, t1} {
		won, err := e.cs[0].ClaimTick(e.ctx, tpl, at)
		require.NoError(e.t, err)
		require.True(e.t, won)
	}
	last, ok, err := e.cs[1].LastTick(e.ctx, tpl)
	require.NoError(e.t, err)
	require.True(e.t, ok)
	require.True(e.t, last.Equal(t2), "an older claim must not move the last tick back: got %s, want %s", last, t2)

	won, err := e.cs[1].ClaimTick(e.ctx, tpl, t2)
	require.NoError(e.t, err)
	require.False(e.t, won)
	t3 := base.Add(time.Hour).In(time.FixedZone("X", 8*3600))
	won, err = e.cs[1].ClaimTick(e.ctx, tpl, t3)
	require.NoError(e.t, err)
	require.True(e.t, won)
	last, ok, err = e.cs[0].LastTick(e.ctx, tpl)
	require.NoError(e.t, err)
	require.True(e.t, ok)
	require.True(e.t, last.Equal(t3), "got %s, want %s (time zones do not matter, instants do)", last, t3)

	_, ok, err = e.cs[0].LastTick(e.ctx, name("Other"))
	require.NoError(e.t, err)
	require.False(e.t, ok, "last ticks are per template")
}

// The run lock excludes every other holder, this host's too, until released; release is
// idempotent and a stale release does not free a lock someone else took since.
func testRunLock(e *env) {
	tpl := name("Run")
	acquire := func(c recurring.Coordinator, tpl string) (func(), bool) {
		rel, ok, err := c.AcquireRun(e.ctx, tpl, 10*time.Second)
		require.NoError(e.t, err)
		if ok {
			require.NotNil(e.t, rel, "a held lock comes with a release function")
		}
		return rel, ok
	}
	rel0, ok := acquire(e.cs[0], tpl)
	require.True(e.t, ok, "a free lock is taken")
	_, ok = acquire(e.cs[1], tpl)
	require.False(e.t, ok, "another host cannot take a held lock")
	_, ok = acquire(e.cs[0], tpl)
	require.False(e.t, ok, "the lock is not re-entrant: a second run on the same host must wait too")
	relOther, ok := acquire(e.cs[1], name("Other"))
	require.True(e.t, ok, "locks are per template")
	relOther()

	rel0()
	rel1, ok := acquire(e.cs[1], tpl)
	require.True(e.t, ok, "a released lock can be taken")
	rel0() // stale, second call: must not free rel1's lock
	_, ok = acquire(e.cs[0], tpl)
	require.False(e.t, ok, "a second release of an old lease must not free the new holder's lock")
	rel1()
	rel1()
	rel, ok := acquire(e.cs[0], tpl)
	require.True(e.t, ok)
	rel()
}

// A held lock outlives its ttl while its lease renews it.
func testRunLockRenewed(e *env) {
	tpl := name("Renew")
	ttl := 300 * time.Millisecond
	rel, ok, err := e.cs[0].AcquireRun(e.ctx, tpl, ttl)
	require.NoError(e.t, err)
	require.True(e.t, ok)
	require.Never(e.t, func() bool {
		r, ok, err := e.cs[1].AcquireRun(e.ctx, tpl, ttl)
		assert.NoError(e.t, err)
		if ok {
			r()
		}
		return ok
	}, 4*ttl, ttl/6, "the holder's lease must keep the lock past its ttl")
	rel()
	require.Eventually(e.t, func() bool {
		r, ok, err := e.cs[1].AcquireRun(e.ctx, tpl, ttl)
		assert.NoError(e.t, err)
		if ok {
			r()
		}
		return ok
	}, 5*time.Second, 10*time.Millisecond, "after release the lock is free")
}

// Many holders racing: never two at once, and every one gets its turn.
func testRunLockContention(e *env) {
	tpl := name("Contend")
	var held, maxHeld, runs atomic.Int32
	var wg sync.WaitGroup
	for _, c := range e.cs {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for done := 0; done < 3; {
					rel, ok, err := c.AcquireRun(e.ctx, tpl, 10*time.Second)
					if err != nil {
						assert.NoError(e.t, err)
						return
					}
					if !ok {
						time.Sleep(time.Millisecond) // polling, as the scheduler's serial wait does
						continue
					}
					n := held.Add(1)
					for m := maxHeld.Load(); n > m && !maxHeld.CompareAndSwap(m, n); m = maxHeld.Load() {
					}
					time.Sleep(time.Millisecond)
					held.Add(-1)
					runs.Add(1)
					rel()
					done++
				}
			}()
		}
	}
	wg.Wait()
	require.EqualValues(e.t, 1, maxHeld.Load(), "the run lock must never be held twice at once")
	require.EqualValues(e.t, len(e.cs)*4*3, runs.Load())
}

// Bad arguments are refused with ErrInvalidArgument and a message, not stored.
func testBadInput(e *env) {
	c := e.cs[0]
	_, err := c.ClaimTick(e.ctx, "", base)
	require.ErrorIs(e.t, err, recurring.ErrInvalidArgument)
	require.Contains(e.t, err.Error(), "template")
	_, err = c.ClaimTick(e.ctx, name("Bad"), time.Time{})
	require.ErrorIs(e.t, err, recurring.ErrInvalidArgument)
	_, _, err = c.LastTick(e.ctx, "")
	require.ErrorIs(e.t, err, recurring.ErrInvalidArgument)
	_, _, err = c.AcquireRun(e.ctx, "", time.Second)
	require.ErrorIs(e.t, err, recurring.ErrInvalidArgument)
	_, _, err = c.AcquireRun(e.ctx, name("Bad"), 0)
	require.ErrorIs(e.t, err, recurring.ErrInvalidArgument)
	require.Contains(e.t, err.Error(), "ttl")
	_, _, err = c.AcquireRun(e.ctx, name("Bad"), -time.Second)
	require.ErrorIs(e.t, err, recurring.ErrInvalidArgument)
}

// A call with a cancelled context fails and claims nothing.
func testCancelled(e *env) {
	c := e.cs[0]
	tpl := name("Cancel")
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	ok, err := c.ClaimTick(ctx, tpl, base)
	require.Error(e.t, err)
	require.ErrorIs(e.t, err, context.Canceled)
	require.False(e.t, ok)
	_, _, err = c.AcquireRun(ctx, tpl, time.Second)
	require.ErrorIs(e.t, err, context.Canceled)
	ok, err = c.ClaimTick(e.ctx, tpl, base)
	require.NoError(e.t, err)
	require.True(e.t, ok, "the cancelled call must not have claimed the tick")
	rel, ok, err := c.AcquireRun(e.ctx, tpl, time.Second)
	require.NoError(e.t, err)
	require.True(e.t, ok, "the cancelled call must not have taken the lock")
	rel()
}

// Claims and last ticks survive a restart: a tick claimed before it is not claimed again.
func testDurable(e *env, b Backend) {
	tpl := name("Durable")
	at := base.Add(42 * time.Second)
	ok, err := e.cs[0].ClaimTick(e.ctx, tpl, at)
	require.NoError(e.t, err)
	require.True(e.t, ok)
	c := b.Reopen(e.t, e.cs[0])
	last, ok, err := c.LastTick(e.ctx, tpl)
	require.NoError(e.t, err)
	require.True(e.t, ok, "the last tick must survive a restart (misfire catch-up needs it)")
	require.True(e.t, last.Equal(at))
	ok, err = c.ClaimTick(e.ctx, tpl, at)
	require.NoError(e.t, err)
	require.False(e.t, ok, "a tick claimed before the restart must not run again")
}
