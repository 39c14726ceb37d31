package isolate

import (
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// Memory caps inside a worker, in layers (see docs/sandbox.md, "Isolated workers"):
//
//  1. heapInUse is the VM's MemoryProbe: the VM samples it while code runs and ends the
//     execution with "memory_limit" when it grows by more than the cap; the worker survives.
//  2. debug.SetMemoryLimit near the cap makes the collector reclaim garbage before layer 1 or
//     3 mistakes it for growth.
//  3. The supervisor samples the worker's RSS every few milliseconds and kills it past the cap
//     plus slack (for built-ins that allocate without ever checking goja's interrupt).
//  4. RLIMIT_AS, set to the current address space plus twice the cap plus slack, makes one huge
//     allocation fail at once: the Go runtime dies with "out of memory", which the supervisor
//     reports as "memory_limit".
//
// debug.SetMaxStack is set from the cap too, so Go-stack blow-ups in goja built-ins (toString of
// deeply nested arrays) die fast with "goroutine stack exceeds", reported as "stack_overflow".

var (
	probeMu      sync.Mutex
	probeSamples = []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/stacks:bytes"},
	}
	goSamples = []metrics.Sample{
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
	}
)

// heapInUse returns the bytes held by heap objects (live, or dead and not yet swept) and
// goroutine stacks. runtime/metrics reads them without stopping the world, so the VM can call it
// every few milliseconds.
func heapInUse() uint64 {
	probeMu.Lock()
	defer probeMu.Unlock()
	metrics.Read(probeSamples)
	return sampleUint(probeSamples[0]) + sampleUint(probeSamples[1])
}

// goInUse returns the memory the Go runtime holds from the OS and has not given back.
func goInUse() uint64 {
	probeMu.Lock()
	defer probeMu.Unlock()
	metrics.Read(goSamples)
	total, released := sampleUint(goSamples[0]), sampleUint(goSamples[1])
	if released > total {
		return 0
	}
	return total - released
}

func sampleUint(s metrics.Sample) uint64 {
	if s.Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s.Value.Uint64()
}

const (
	// asSlack is address space beyond twice the cap that a worker may map: heap arenas are
	// reserved 64 MiB at a time, plus GC metadata and goroutine stacks.
	asSlack = 256 << 20
	// minMaxStack and maxMaxStack bound the Go stack a goroutine may grow to (cap/2 between).
	minMaxStack = 32 << 20
	maxMaxStack = 256 << 20
)

// memKnobs sets a worker's process-wide memory caps for the cap of the next execution.
type memKnobs struct {
	mu  sync.Mutex
	cap int64 // the cap the knobs are set for; 0 = not set
}

// prepare sets the caps for an execution with memory cap c. force re-reads the process's
// current figures even when c has not changed (after an execution, whose leftovers move the
// baseline).
func (k *memKnobs) prepare(c int64, force bool) {
	if c < minMemoryBytes {
		c = minMemoryBytes
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if c == k.cap && !force {
		return
	}
	k.cap = c
	debug.SetMemoryLimit(int64(goInUse()) + c - c/8)
	stack := min(max(c/2, minMaxStack), maxMaxStack)
	debug.SetMaxStack(int(stack))
	st := readSelfStats()
	if st.VmSize > 0 {
		room := uint64(2*c + asSlack)
		if raceBuild {
			room *= 4
		}
		setAddressSpaceLimit(st.VmSize + room)
	}
}
