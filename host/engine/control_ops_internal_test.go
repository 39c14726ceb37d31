package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A node skipped or force-failed before its request was revoked ends as that operation recorded
// it: a host that reads both records before it checks the node's held entry drops the entry,
// and does not record the node revoked as well (the revoke listed only the nodes still waiting).
func TestCheckPrefersTheNodesEndToItsRequestsRevoke(t *testing.T) {
	now := time.Now()
	for _, op := range []string{ctlSkipNode, ctlForcedFail} {
		c := newControlTable()
		c.apply(controlRec{Op: ctlPauseRequest, RequestID: "req", Ended: []string{"n1", "n2"}, At: now})
		c.apply(controlRec{Op: op, NodeID: "n1", RequestID: "req", Attempt: 1, At: now})
		c.apply(controlRec{Op: ctlRevokeRequest, RequestID: "req", Ended: []string{"n2"}, At: now})
		v, _ := c.check(&envelope{RequestID: "req", NodeID: "n1", Attempt: 1})
		require.Equal(t, verdictDrop, v, op)
		v, _ = c.check(&envelope{RequestID: "req", NodeID: "n2", Attempt: 1})
		require.Equal(t, verdictDrop, v, "listed by the revoke")
		v, _ = c.check(&envelope{RequestID: "req", NodeID: "n3", Attempt: 1})
		require.Equal(t, verdictDropRevoked, v, "made later: this host records it revoked")
		v, _ = c.check(&envelope{RequestID: "req", NodeID: "n1", Attempt: 2})
		require.Equal(t, verdictDropRevoked, v, "a later attempt of the node is the revoke's")
	}
}
