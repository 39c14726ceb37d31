package host

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// releaseEvery and releaseAbove tune memoryPart: how often it looks, and how much memory the heap
// may hold beyond its live bytes before a quiet host gives it back.
const (
	releaseEvery = time.Second
	releaseAbove = 64 << 20
)

// memoryPart gives a quiet host's idle heap back to the operating system when JavaScript runs
// in-process (--sandbox inprocess). There the JS heap is the host's, and Go keeps freed memory
// mapped until its heap goal shrinks: a call that built a 100 MiB string and a 64 MiB error
// left the host's RSS 230 MiB up for good, although nothing held them (issue 12). Every
// releaseEvery it looks at the runtime's figures (runtime/metrics: no stop-the-world); when no
// collection has run since its last look and the heap holds more than releaseAbove beyond its
// live bytes, it calls debug.FreeOSMemory. A busy host collects by itself, so this adds no
// collection to one. Isolated workers free their own memory after a large execution (isolate),
// and the host never holds what they made.
func (h *Host) memoryPart() part {
	var stop context.CancelFunc
	var done chan struct{}
	return part{name: "the memory releaser",
		start: func(context.Context) error {
			if h.cfg.Sandbox != SandboxInProcess {
				return nil
			}
			var ctx context.Context
			ctx, stop = context.WithCancel(context.Background())
			done = make(chan struct{})
			go func() {
				defer close(done)
				releaseIdleMemory(ctx, releaseEvery, releaseAbove)
			}()
			return nil
		},
		stop: func(context.Context) error {
			if stop != nil {
				stop()
				<-done
				stop = nil
			}
			return nil
		}}
}

// releaseIdleMemory runs the loop of memoryPart until ctx ends.
func releaseIdleMemory(ctx context.Context, every time.Duration, above uint64) {
	samples := []metrics.Sample{
		{Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var lastCycles uint64
	over, quiet, cooldown, backoff := 0, 0, 0, 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(samples)
		cycles := samples[0].Value.Uint64()
		live := samples[1].Value.Uint64()
		objects := samples[2].Value.Uint64()
		held := objects + samples[3].Value.Uint64() + samples[4].Value.Uint64()
		over = (over + 1) * boolInt(held > live+above)
		quiet = (quiet + 1) * boolInt(cycles == lastCycles)
		cooldown = max(cooldown-1, 0)
		switch {
		// Quiet (no collection since the last look) with memory held beyond the live heap; or
		// busy and still holding it after busyLooks looks — collections that keep coming (timers,
		// a trickle of work) must not keep a spike's memory from going back for ever.
		case over > 0 && (quiet > 0 || over >= busyLooks):
		// Quiet for busyLooks looks with a large heap: "live" is the last collection's figure,
		// which may have marked a spike that is garbage by now, and an idle host may not collect
		// again for minutes. Collect and see; if it was live after all, wait longer next time.
		case quiet >= busyLooks && objects > above && cooldown == 0:
		default:
			lastCycles = cycles
			continue
		}
		debug.FreeOSMemory()
		metrics.Read(samples)
		cycles = samples[0].Value.Uint64()
		if samples[2].Value.Uint64() > above {
			// A large heap that was live (a call still running, or a host that keeps much):
			// look again later, twice as late each time it stays so, up to 5 minutes.
			backoff = min(max(backoff*2, 2*busyLooks), 60*busyLooks)
			cooldown = backoff
		} else {
			backoff = 0
		}
		over, quiet = 0, 0
		lastCycles = cycles
	}
}

// busyLooks is how many looks in a row a host that keeps collecting may hold releaseAbove
// beyond its live heap before memoryPart gives it back anyway.
const busyLooks = 5

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
