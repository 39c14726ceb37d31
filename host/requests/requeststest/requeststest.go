// Package requeststest is the conformance suite every requests.Tracker runs.
package requeststest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/requests"
	"github.com/trellis-run/trellis/host/vocab"
)

// Run runs the suite on trackers made by open (each call may return the same backend: every
// test uses request ids of its own).
func Run(t *testing.T, open func(t *testing.T) requests.Tracker) {
	ctx := context.Background()
	req := func() string { return vocab.NewID("req_") }

	t.Run("LastCloseFinishes", func(t *testing.T) {
		tr, r := open(t), req()
		require.NoError(t, tr.OpenNodes(ctx, r, "a", "b"))
		fin, err := tr.CloseNode(ctx, r, "a")
		require.NoError(t, err)
		require.False(t, fin)
		fin, err = tr.CloseNode(ctx, r, "b")
		require.NoError(t, err)
		require.True(t, fin)
	})
	t.Run("ChildOpenedBeforeParentCloses", func(t *testing.T) {
		tr, r := open(t), req()
		require.NoError(t, tr.OpenNodes(ctx, r, "root"))
		require.NoError(t, tr.OpenNodes(ctx, r, "child"))
		fin, err := tr.CloseNode(ctx, r, "root")
		require.NoError(t, err)
		require.False(t, fin)
		fin, err = tr.CloseNode(ctx, r, "child")
		require.NoError(t, err)
		require.True(t, fin)
	})
	t.Run("DuplicateCloses", func(t *testing.T) {
		tr, r := open(t), req()
		require.NoError(t, tr.OpenNodes(ctx, r, "a", "b"))
		require.NoError(t, tr.OpenNodes(ctx, r, "a")) // opening twice changes nothing
		for i := 0; i < 3; i++ {
			fin, err := tr.CloseNode(ctx, r, "a")
			require.NoError(t, err)
			require.False(t, fin, "a duplicate close of a must not finish the request while b is open")
		}
		fin, err := tr.CloseNode(ctx, r, "b")
		require.NoError(t, err)
		require.True(t, fin)
		for _, n := range []string{"a", "b", "c"} {
			fin, err = tr.CloseNode(ctx, r, n)
			require.NoError(t, err)
			require.False(t, fin, "a close after the finish must not finish it again")
		}
	})
	t.Run("UnknownRequest", func(t *testing.T) {
		tr := open(t)
		fin, err := tr.CloseNode(ctx, req(), "x")
		require.NoError(t, err)
		require.False(t, fin)
	})
	t.Run("ReopenAfterFinish", func(t *testing.T) {
		tr, r := open(t), req()
		require.NoError(t, tr.OpenNodes(ctx, r, "a"))
		fin, err := tr.CloseNode(ctx, r, "a")
		require.NoError(t, err)
		require.True(t, fin)
		require.NoError(t, tr.OpenNodes(ctx, r, "a"))
		fin, err = tr.CloseNode(ctx, r, "a")
		require.NoError(t, err)
		require.True(t, fin, "new work after the finish finishes the request again")
	})
	t.Run("RequestsApart", func(t *testing.T) {
		tr, r1, r2 := open(t), req(), req()
		require.NoError(t, tr.OpenNodes(ctx, r1, "a"))
		require.NoError(t, tr.OpenNodes(ctx, r2, "a"))
		fin, err := tr.CloseNode(ctx, r1, "a")
		require.NoError(t, err)
		require.True(t, fin)
		fin, err = tr.CloseNode(ctx, r2, "a")
		require.NoError(t, err)
		require.True(t, fin)
	})
	t.Run("ConcurrentCloses", func(t *testing.T) {
		tr := open(t)
		for round := 0; round < 5; round++ {
			r := req()
			const n = 32
			nodes := make([]string, n)
			for i := range nodes {
				nodes[i] = fmt.Sprintf("node_%d", i)
			}
			require.NoError(t, tr.OpenNodes(ctx, r, nodes...))
			var finished atomic.Int64
			var wg sync.WaitGroup
			for i := 0; i < n; i++ {
				for dup := 0; dup < 2; dup++ { // each node closed twice, as a redelivery would
					wg.Add(1)
					go func(node string) {
						defer wg.Done()
						fin, err := tr.CloseNode(ctx, r, node)
						if err != nil {
							t.Error(err)
						}
						if fin {
							finished.Add(1)
						}
					}(nodes[i])
				}
			}
			wg.Wait()
			require.EqualValues(t, 1, finished.Load(), "exactly one close finishes the request")
		}
	})
	t.Run("TwoHandles", func(t *testing.T) {
		// Two trackers on one backend, as two processes share it (a serve and a `trellis call`,
		// two hosts): what one opens the other sees, and among concurrent closes of a request's
		// last nodes through both, exactly one finishes it.
		tr1, tr2 := open(t), open(t)
		for round := 0; round < 5; round++ {
			r := req()
			const n = 16
			nodes := make([]string, n)
			for i := range nodes {
				nodes[i] = fmt.Sprintf("node_%d", i)
			}
			require.NoError(t, tr1.OpenNodes(ctx, r, nodes[:n/2]...))
			require.NoError(t, tr2.OpenNodes(ctx, r, nodes[n/2:]...))
			var finished atomic.Int64
			var wg sync.WaitGroup
			for i := 0; i < n; i++ {
				for _, tr := range []requests.Tracker{tr1, tr2} { // each node closed through both
					wg.Add(1)
					go func(tr requests.Tracker, node string) {
						defer wg.Done()
						fin, err := tr.CloseNode(ctx, r, node)
						if err != nil {
							t.Error(err)
						}
						if fin {
							finished.Add(1)
						}
					}(tr, nodes[i])
				}
			}
			wg.Wait()
			require.EqualValues(t, 1, finished.Load(), "exactly one close finishes the request")
		}
	})
}
