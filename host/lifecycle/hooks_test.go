package lifecycle_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/lifecycle"
)

// TestHooksOf: only with needRunHook, and only exported names that are hooks.
func TestHooksOf(t *testing.T) {
	t.Parallel()
	s := lifecycle.HooksOf(true, []string{"handle", "node_enter", "post_callback"})
	require.True(t, s.Has(lifecycle.NodeEnter))
	require.True(t, s.Has(lifecycle.PostCallback))
	require.False(t, s.Has(lifecycle.NodeFinish))
	require.False(t, s.Has(lifecycle.PipelineFinish), "not a hook")
	require.Zero(t, lifecycle.HooksOf(false, []string{"node_enter"}), "without needRunHook, none")
	for _, h := range lifecycle.Hooks {
		require.True(t, lifecycle.HooksOf(true, []string{string(h)}).Has(h), h)
	}
}

func TestPrefixLogs(t *testing.T) {
	t.Parallel()
	require.Nil(t, lifecycle.PrefixLogs(lifecycle.NodeEnter, nil))
	in := []jsvm.LogEntry{{Level: "log", Message: "hi"}}
	out := lifecycle.PrefixLogs(lifecycle.NodeEnter, in)
	require.Equal(t, "[node_enter] hi", out[0].Message)
	require.Equal(t, "hi", in[0].Message, "the hook's own entries are not changed")
}
