package localtimers

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/timers"
)

// clockStore is a store whose own clock (timers.StoreClock) is off from this machine's by skew,
// as Redis's TIME is from a host whose clock runs wrong.
type clockStore struct {
	timers.Store
	skew time.Duration
}

func (c clockStore) Now(context.Context) (time.Time, error) { return time.Now().Add(c.skew), nil }

// A runner on the default clock judges due times by the store's clock, not the machine's: with
// the machine 30 s ahead of the store, a task due in 300 ms by the machine's clock is not due
// for another 30 s by the store's, and does not fire; with the store's clock ahead, a task due in
// 30 s by the machine's fires at once. Before, a host whose clock ran ahead fired tasks early.
func TestRunnerFollowsTheStoresClock(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		skew  time.Duration // store − machine
		due   time.Duration // from now, by the machine's clock
		fires bool
	}{
		{"machine ahead", -30 * time.Second, 300 * time.Millisecond, false},
		{"machine behind", 30 * time.Second, 25 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := clockStore{Store: open(t), skew: tc.skew}
			var fired atomic.Int32
			r, err := timers.NewRunner(timers.RunnerOptions{Store: st, Owner: "a", Poll: 20 * time.Millisecond,
				Fire: func(context.Context, timers.Task) (any, error) { fired.Add(1); return nil, nil }})
			require.NoError(t, err)
			require.NoError(t, r.Start(t.Context()))
			t.Cleanup(func() { _ = r.Stop(context.Background()) })
			_, _, err = st.Create(t.Context(), timers.Task{FullName: "tasks.T", FuncName: "run", TaskType: "once", StartTime: time.Now().Add(tc.due)})
			require.NoError(t, err)
			r.Notify()
			if tc.fires {
				require.Eventually(t, func() bool { return fired.Load() == 1 }, 5*time.Second, 10*time.Millisecond, "due by the store's clock")
				return
			}
			time.Sleep(time.Second)
			require.Zero(t, fired.Load(), "not due by the store's clock")
		})
	}
}
