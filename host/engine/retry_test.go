package engine

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/vocab"
)

func TestSenderMatches(t *testing.T) {
	t.Parallel()
	require.True(t, senderMatches("*", "models.User"))
	require.True(t, senderMatches("models.*", "models.User"))
	require.False(t, senderMatches("models.*", "modelsX.User"))
	require.True(t, senderMatches("models.User", "models.User"))
	require.False(t, senderMatches("models.User", "models.UserX"))
}

func TestBroadcastGroupIsStableAcrossRestarts(t *testing.T) {
	t.Parallel()
	name, err := os.Hostname()
	require.NoError(t, err)
	require.Equal(t, name, defaultHostName(), "the host identity is the machine's name, not one process's")
	l := &Listener{HandlerType: HandlerBroadcast, BroadcastIdentifier: "host"}
	require.Equal(t, "broadcast:"+name, l.Group(defaultHostName(), vocab.NewID("inst_")))
	require.Equal(t, l.Group(defaultHostName(), vocab.NewID("inst_")), l.Group(defaultHostName(), vocab.NewID("inst_")))
	l.BroadcastIdentifier = "instance"
	require.NotEqual(t, l.Group("h", "a"), l.Group("h", "b"))
	require.Equal(t, "pool", (&Listener{HandlerType: HandlerPool}).Group("h", "a"))
}
