package isolate

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/jsvm/jsvmtest"
)

// TestConformance runs the executor conformance suite on pools of real jsvm.VMs in worker
// processes (this test binary re-executed, see TestMain): two workers, so a limit broken in one
// leaves the other serving, and the default spare.
//
// Not parallel with the other tests: its subtests run in parallel among themselves, and the
// timing checks of the fake-executor tests (a stuck worker killed within 500 ms of its deadline)
// do not compete with their dozens of worker processes.
func TestConformance(t *testing.T) {
	jsvmtest.Run(t, func(t *testing.T, o jsvmtest.Options) jsvm.Executor {
		p, err := New(Options{Workers: 2, Host: o.Host, Limits: o.Limits})
		require.NoError(t, err)
		return p
	}, jsvmtest.Features{
		// The VM's probe, the Go soft limit, the supervisor's RSS sampling and RLIMIT_AS cap what
		// a worker allocates, whatever allocates it.
		MemoryHardCap: true,
		// A worker still busy KillGrace after its deadline is killed, wherever it is stuck.
		StopsStuckBuiltins: true,
		// Close stops every worker; what they were running ends with jsvm.ErrClosed.
		CloseEndsRunning: true,
	})
}
