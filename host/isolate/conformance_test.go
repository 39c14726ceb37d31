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
func TestConformance(t *testing.T) {
	t.Parallel()
	jsvmtest.Run(t, func(t *testing.T, o jsvmtest.Options) jsvm.Executor {
		p, err := New(Options{Workers: 2, Host: o.Host, Limits: o.Limits})
		require.NoError(t, err)
		return p
	}, jsvmtest.Features{MemoryHardCap: true, StopsStuckBuiltins: true, CloseEndsRunning: true, KnownBugs: map[string]string{
		"LargeIntegers": "the workers' jsvm.VM turns an int64 beyond ±2^53 into a float64 JS number (see jsvm's TestConformance)",
		"HostErrorDetails": "toWireError (proc.go) keeps only the code and message of a coded host error that is not a " +
			"*jsvm.Error, so details it gives with ErrorDetails() map[string]any never reach JS (the in-process VM passes them)",
	}})
}
