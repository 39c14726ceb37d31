package timers

import (
	"os"
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
