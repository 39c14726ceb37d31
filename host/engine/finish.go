package engine

import (
	"context"
	"fmt"

	"github.com/trellis-run/trellis/host/lifecycle"
	"github.com/trellis-run/trellis/logstore"
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
// A broadcast node ends at its send (success/broadcast); each receiving host runs a child node
// of its own (the node's id, a dot, the receiver's suffix). How many hosts will receive it is
// not known for sure when it is sent, so the sender opens the child node of every receiver that
// said it is alive within deadAfter (controlsnap.go: alive records name the broadcast listeners
// each host receives). A receiver that was not counted — a host that comes back later, on the
// queue its reliable delivery kept — runs its node without holding the request open; a counted
// receiver that dies before it runs the node holds the request open until it comes back (a
// reliable broadcast), or until requests.Retention.

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
	if !e.tracking() {
		return // nobody hears pipeline_finish: no write for it either
	}
	if err := lifecycle.CloseNode(ctx, e.opts.Requests, e.opts.Signals, requestID, nodeID); err != nil {
		e.opts.Logger.Error("engine: record the end of a node for pipeline_finish", "node", nodeID, "err", err)
	}
}

// writeEnd writes a node's end rows and closes the node for pipeline_finish at the same time:
// two durable writes to two stores, neither needing the other, so the run waits for the slower
// of them rather than for both in turn. (Should the host die between them, the redelivered run
// writes its rows again and its CloseNode, a duplicate, changes nothing.)
func (e *Engine) writeEnd(ctx context.Context, rows []logstore.Row, requestID, nodeID string) {
	if !e.tracking() {
		e.writeRows(ctx, rows...)
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.closeNode(ctx, requestID, nodeID)
	}()
	e.writeRows(ctx, rows...)
	<-done
}

// receiverNodes are the child nodes a broadcast node of l sent now is counted for: one per
// receiver alive now.
func (e *Engine) receiverNodes(l *Listener, nodeID string) []string {
	if !e.tracking() {
		return nil
	}
	var out []string
	for _, g := range e.liveReceivers(l) {
		out = append(out, nodeID+"."+shortHash(g))
	}
	return out
}
