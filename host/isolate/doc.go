// Package isolate runs an app's JavaScript in a supervised pool of worker processes, so that code
// which breaks its limits in ways goja cannot stop in-process (built-ins that ignore Interrupt,
// allocations that outrun any sampler, Go-stack blow-ups inside built-ins) ends only its own
// execution, with a clear error code, while the host and every other execution go on.
//
// It owns the worker processes and everything about them: starting them (a re-exec of the host
// binary, or Options.Command), the frame protocol on their stdin/stdout, per-execution deadlines
// and kills, memory caps in layers (runtime/metrics probe, Go soft limit, RSS sampling by the
// supervisor, RLIMIT_AS), classifying crashes, respawning with bounded start attempts, and
// keeping every worker on the current Source. Inside a worker the JavaScript runs in a jsvm.VM.
//
// It must not know anything about events, tasks or storage: it reaches the host only through
// the jsvm.HostCaller it is given, and implements jsvm.Executor so the host can swap it for the
// in-process VM. A binary that uses a Pool must call WorkerMain when IsWorker is true, first
// thing in main (and in TestMain).
package isolate
