package engine

import (
	"context"
	"fmt"
	"os"

	"github.com/trellis-run/trellis/host/lifecycle"
)

// pipeline_finish (docs/signals.md). Options.Requests holds each request's unfinished nodes:
// sendEvent, resend and retry open the nodes they create before publishing them (a handler's
// sendEvent runs while its own node is still open), and every place that records a node's end
// — success, final failure, skip, forcedFail, revoke, a callback or its timeout — closes it
// after writing the row. The close that leaves the request without an unfinished node emits
// pipeline_finish. Closes are idempotent (a redelivered node closing twice finishes nothing),
// so only opens are guarded: nodes are tracked only while the app has signals on, the only
// time the signal can be heard, which keeps the cost off apps that do not listen.
//
// Broadcast listeners are not counted: how many hosts receive a broadcast is not known when it
// is sent.

// tracking says whether nodes are opened in the tracker now.
func (e *Engine) tracking() bool {
	if e.opts.Requests == nil || e.opts.Signals == nil {
		return false
	}
	snap := e.opts.Snapshot()
	return snap != nil && snap.App.Signals.Enabled
}

// openNodes marks nodes of requestID unfinished, before they are published.
func (e *Engine) openNodes(ctx context.Context, requestID string, nodeIDs ...string) error {
	if len(nodeIDs) == 0 || !e.tracking() {
		return nil
	}
	if err := e.opts.Requests.OpenNodes(ctx, requestID, nodeIDs...); err != nil {
		return fmt.Errorf("%w: track the new nodes of %s: %v", ErrUnavailable, requestID, err)
	}
	return nil
}

// closeNode marks the node ended (its end row written) and emits pipeline_finish when it was
// its request's last unfinished node.
func (e *Engine) closeNode(ctx context.Context, requestID, nodeID string) {
	if err := lifecycle.CloseNode(ctx, e.opts.Requests, e.opts.Signals, requestID, nodeID); err != nil {
		fmt.Fprintf(os.Stderr, "trellis: engine: record the end of node %s for pipeline_finish: %v\n", nodeID, err)
	}
}
