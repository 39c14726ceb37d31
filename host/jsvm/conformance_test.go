package jsvm_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/jsvm/jsvmtest"
)

// cancelDuringHostCallBug is why CancelDuringHostCall is skipped, for both executors.
const cancelDuringHostCallBug = "when the execution's ctx is canceled, or its deadline passes, while a host call is in " +
	"flight and the host returns the ctx's error, the host-call binding (hostMethod, elements.go) checks x.limitCode() before the " +
	"trip, which context.AfterFunc/time.AfterFunc make asynchronously (the likely cause): the ctx error is thrown as an ordinary JS Error " +
	"(code canceled or timeout), so the execution ends as js_error \"context canceled\" (16 of 20 runs) or js_error " +
	"\"context deadline exceeded\", and code that catches around the call can even return normally after its deadline"

// TestConformance runs the executor conformance suite on the in-process VM. Its memory cap is
// what the guards check, not a hard cap, and it cannot stop code stuck inside a built-in; Close
// lets running executions finish (docs/sandbox.md, "What the in-process VM cannot stop").
func TestConformance(t *testing.T) {
	t.Parallel()
	jsvmtest.Run(t, func(t *testing.T, o jsvmtest.Options) jsvm.Executor {
		vm, err := jsvm.New(jsvm.Options{Host: o.Host, Limits: o.Limits})
		require.NoError(t, err)
		return vm
	}, jsvmtest.Features{KnownBugs: map[string]string{
		"CancelDuringHostCall": cancelDuringHostCallBug,
	}})
}
