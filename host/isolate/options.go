package isolate

import (
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/trellis-run/trellis/host/jsvm"
)

// EnvWorker is the environment variable that makes a process a worker (see IsWorker). The pool
// sets it on every worker it starts, whatever Options.Command is.
const EnvWorker = "TRELLIS_ISOLATE_WORKER"

// Options configure a Pool. Zero fields take the defaults documented on each field.
type Options struct {
	// Command is the argv that starts a worker. Default: this executable (os.Executable) with no
	// arguments; the worker knows what it is from EnvWorker, which the pool always sets.
	Command []string
	// Env is added to every worker's environment ("GODEBUG=...", test switches), which otherwise
	// holds only EnvWorker and the Go runtime's variables and TZ of the host's: never its secrets.
	Env []string
	// Workers is how many executions run at once, each in its own process. Default
	// runtime.NumCPU().
	Workers int
	// Spares is how many extra warm processes the pool keeps beyond Workers, so a killed
	// worker is replaced at once instead of after a process start and a source load. Default 1;
	// -1 keeps none.
	Spares int
	// Host receives the workers' host calls (forwarded over the pipe). Nil makes such calls fail
	// with code "unavailable", as in the in-process VM.
	Host jsvm.HostCaller
	// Limits are the defaults for executions; zero fields take jsvm.DefaultLimits. MemoryBytes is
	// also what each worker's hard caps are sized for, and the size caps what the largest frame
	// the supervisor reads is sized for (twice what they let one execution hand back, + 16 MiB):
	// a call's own caps above these are cut short by that bound.
	Limits jsvm.Limits
	// KillGrace is how long after an execution's deadline its worker may take to answer before
	// it is killed. The worker's own VM normally answers "timeout" at the deadline; the kill is
	// for code stuck where goja's interrupt cannot reach. Default 20 ms.
	KillGrace time.Duration
	// StartTimeout bounds a worker's start and handshake. Default 10 s.
	StartTimeout time.Duration
	// OnWorkerExit, when set, hears of every worker process that ends while the pool runs (and
	// is replaced), once, from the goroutine that reaped it: the host logs and counts them. A
	// pool's own Close reports none.
	OnWorkerExit func(WorkerExit)
}

// WorkerExit is why a worker process ended.
type WorkerExit struct {
	PID int
	// Killed is true when the pool killed it (an execution broke a limit the VM could not
	// enforce, or the worker misbehaved) or a signal from outside did (the OOM killer).
	Killed bool
	// Code and Reason are the error the execution it ran got (jsvm.CodeTimeout,
	// CodeMemoryLimit, CodeStackOverflow, CodeCanceled; CodeJSError for a crash); empty when it
	// ended with nothing to say (retired, or killed between executions).
	Code, Reason string
}

// WithDefaults returns o with every zero field set to its default.
func (o Options) WithDefaults() (Options, error) {
	if len(o.Command) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return o, fmt.Errorf("%w: Command is empty and this executable cannot be found (%v); set Options.Command", ErrInvalidOptions, err)
		}
		o.Command = []string{exe}
	}
	if o.Workers == 0 {
		o.Workers = runtime.NumCPU()
	}
	switch {
	case o.Spares == 0:
		o.Spares = 1
	case o.Spares < 0:
		o.Spares = 0
	}
	o.Limits = o.Limits.WithDefaults()
	if o.KillGrace == 0 {
		o.KillGrace = 20 * time.Millisecond
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 10 * time.Second
	}
	return o, o.validate()
}

func (o Options) validate() error {
	switch {
	case o.Workers < 0:
		return fmt.Errorf("%w: Workers is %d; use a positive number, or 0 for one per CPU", ErrInvalidOptions, o.Workers)
	case o.KillGrace < 0:
		return fmt.Errorf("%w: KillGrace is %v; use a positive duration, or 0 for the default 20ms", ErrInvalidOptions, o.KillGrace)
	case o.StartTimeout < 0:
		return fmt.Errorf("%w: StartTimeout is %v; use a positive duration, or 0 for the default 10s", ErrInvalidOptions, o.StartTimeout)
	case o.Command[0] == "":
		return fmt.Errorf("%w: Command[0] is empty; give the path of the worker binary", ErrInvalidOptions)
	case o.Limits.MaxValueDepth > maxWireDepth/2:
		return fmt.Errorf("%w: Limits.MaxValueDepth is %d; values crossing to a worker may nest at most %d levels", ErrInvalidOptions, o.Limits.MaxValueDepth, maxWireDepth/2)
	case o.Limits.MemoryBytes < minMemoryBytes:
		return fmt.Errorf("%w: Limits.MemoryBytes is %d; a worker needs at least %d (16 MiB)", ErrInvalidOptions, o.Limits.MemoryBytes, minMemoryBytes)
	}
	return nil
}

// minMemoryBytes is the smallest cap a worker is sized for: below it the Go runtime's own
// bookkeeping and a compiled app leave no room for JavaScript.
const minMemoryBytes = 16 << 20
