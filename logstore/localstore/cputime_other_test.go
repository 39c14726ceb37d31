//go:build !unix

package localstore_test

import "time"

// cpuTime is unknown here: benchmarks then leave out their per-CPU-second figures.
func cpuTime() time.Duration { return 0 }
