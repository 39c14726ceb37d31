package timers

import (
	"context"
	"os"
	"sync/atomic"
	"time"
)

// ClockSkewEnv is a test-only seam: a Go duration ("30s", "-5s") added to the clock a Runner
// judges due times and leases by when RunnerOptions.Now is not set. The fault suite
// (cmd/trellis/faults) starts a `trellis serve` with it to play a host whose clock runs ahead:
// Go reads the time through the vDSO, so libfaketime cannot skew a Go binary. Only that clock is
// skewed — the store's own timestamps, the log's and JavaScript's Date are not. Unset, empty or
// not a duration: no skew. Nothing else reads it; do not set it in production.
const ClockSkewEnv = "TRELLIS_CLOCK_SKEW"

// defaultNow is time.Now, moved by ClockSkewEnv.
func defaultNow() func() time.Time {
	skew, err := time.ParseDuration(os.Getenv(ClockSkewEnv))
	if err != nil || skew == 0 {
		return time.Now
	}
	return func() time.Time { return time.Now().Add(skew) }
}

// storeSync is the default clock of a Runner whose store has a clock of its own (StoreClock):
// the local clock moved by the offset to the store's, measured at start and every syncEvery
// (rounded down by the round trip), so due times and leases are judged by one
// clock on every host whatever each machine's says.
type storeSync struct {
	local  func() time.Time
	store  StoreClock
	offset atomic.Int64 // store − local, ns
	synced atomic.Int64 // local unix ns of the last sync
}

const syncEvery = 10 * time.Second

func (c *storeSync) now() time.Time { return c.local().Add(time.Duration(c.offset.Load())) }

// sync measures the offset when the last measure is older than syncEvery (or force).
func (c *storeSync) sync(ctx context.Context, force bool) error {
	if !force && time.Duration(c.local().UnixNano()-c.synced.Load()) < syncEvery {
		return nil
	}
	st, err := c.store.Now(ctx)
	if err != nil {
		return err
	}
	t1 := c.local()
	// The store read its clock before t1, at most a round trip before: taking t1 gives the smallest offset
	// it can be, so this clock never runs ahead of the store's (a task is never early), at the
	// cost of being up to one round trip late.
	c.offset.Store(int64(st.Sub(t1)))
	c.synced.Store(t1.UnixNano())
	return nil
}
