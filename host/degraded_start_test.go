package host_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
)

// A host that serves (cfg.Watch) starts without the elements that have problems, in both
// sandboxes: issue 12's 1 MB chain of "!" kept the whole app from starting. The others run, the
// broken one is a problem (health says degraded) and not callable.
func TestServeStartsWithoutBrokenElements(t *testing.T) {
	t.Parallel()
	for _, sandbox := range []string{host.SandboxInProcess, host.SandboxIsolated} {
		t.Run(sandbox, func(t *testing.T) {
			t.Parallel()
			h := setup(t, host.Config{Sandbox: sandbox, Watch: true}, map[string]string{
				"app.json":              `{"name": "degraded"}`,
				"services/Ok/e.json":    `{"title": "Ok", "type": "services.NormalType"}`,
				"services/Ok/index.js":  "exports.f = function () { return 1; };",
				"services/Bad/e.json":   `{"title": "Bad", "type": "services.NormalType"}`,
				"services/Bad/index.js": "exports.f=function(){return " + strings.Repeat("!", 1_000_000) + "1};",
			})
			res, err := h.CallService(context.Background(), "services.Ok", "f", nil)
			require.NoError(t, err)
			require.Equal(t, int64(1), res.Value)
			problems := h.Problems()
			require.Len(t, problems, 1)
			require.Equal(t, "services/Bad/index.js", problems[0].File)
			require.Contains(t, problems[0].Message, "nested more than 1000 levels")
			_, err = h.CallService(context.Background(), "services.Bad", "f", nil)
			require.ErrorIs(t, err, host.ErrNotFound)
		})
	}
}
