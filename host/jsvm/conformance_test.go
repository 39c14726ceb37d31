package jsvm_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/jsvm/jsvmtest"
)

// TestConformance runs the executor conformance suite on the in-process VM. Its memory cap is
// what the guards check, not a hard cap, and it cannot stop code stuck inside a built-in; Close
// lets running executions finish (docs/sandbox.md, "What the in-process VM cannot stop").
func TestConformance(t *testing.T) {
	t.Parallel()
	jsvmtest.Run(t, func(t *testing.T, o jsvmtest.Options) jsvm.Executor {
		vm, err := jsvm.New(jsvm.Options{Host: o.Host, Limits: o.Limits})
		require.NoError(t, err)
		return vm
	}, jsvmtest.Features{})
}
