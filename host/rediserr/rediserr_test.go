package rediserr

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// replyError is a server reply as go-redis surfaces it.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

func TestUnavailable(t *testing.T) {
	t.Parallel()
	require.False(t, Unavailable(nil))
	require.False(t, Unavailable(redis.Nil), "a missing key is an answer")
	require.False(t, Unavailable(replyError("ERR unknown command")), "a bad command is a bug, not an outage")
	require.False(t, Unavailable(replyError("NOSCRIPT No matching script")))
	require.True(t, Unavailable(replyError("LOADING Redis is loading the dataset in memory")))
	require.True(t, Unavailable(replyError("READONLY You can't write against a read only replica.")))
	require.True(t, Unavailable(&net.OpError{Op: "dial", Err: errors.New("connection refused")}))
	require.True(t, Unavailable(context.DeadlineExceeded))
}
