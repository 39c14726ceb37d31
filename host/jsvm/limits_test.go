package jsvm

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTimeoutStopsBusyLoop(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(index("services.Loop", `exports.f = function () { for (;;) {} }`)))
	timeout := 100 * time.Millisecond
	start := time.Now()
	res, err := vm.Execute(context.Background(), Call{Element: "services.Loop", Function: "f", Limits: Limits{Timeout: timeout}})
	elapsed := time.Since(start)
	require.Error(t, err)
	e := err.(*Error)
	require.Equal(t, CodeTimeout, e.Code)
	require.Equal(t, "services/Loop/index.js", e.File)
	require.GreaterOrEqual(t, elapsed, timeout)
	// CI-safe bound: the loop must stop long before a second timeout would have passed.
	require.Less(t, elapsed, timeout+time.Second, "loop ran %s past its deadline", elapsed-timeout)
	require.Nil(t, res.Value)
}

func TestStackOverflow(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(index("services.Rec", `exports.f = function f() { try { return f() } catch (e) { return "caught" } }`)))
	e := runErr(t, vm, "services.Rec", "f")
	require.Equal(t, CodeStackOverflow, e.Code)
}
