package tasks

import (
	"context"
	"fmt"

	"github.com/trellis-run/trellis/host/lifecycle"
	"github.com/trellis-run/trellis/logstore"
)

// pipeline_finish (docs/signals.md): a task is a node of its request. Options.Requests holds
// each request's unfinished nodes: a task is opened before it is stored (createTimerTask, a
// date-field task, a tick, a retry) — a task created by a handler joins the handler's request
// while the handler still runs — and closed once its end is recorded (success, final failure,
// skip, forcedFail, forcedEnd). Only while the app has signals on, as the engine does.

// tracking says whether task nodes are opened in the tracker now.
func (c *Center) tracking() bool {
	if c.opts.Requests == nil || c.opts.Signals == nil {
		return false
	}
	snap := c.opts.Snapshot()
	return snap != nil && snap.App.Signals.Enabled
}

// openNode marks a task's node unfinished, before the task is stored or run.
func (c *Center) openNode(ctx context.Context, requestID, nodeID string) error {
	if !c.tracking() {
		return nil
	}
	if err := c.opts.Requests.OpenNodes(ctx, requestID, nodeID); err != nil {
		return fmt.Errorf("tasks: track the node of %s: %w", requestID, err)
	}
	return nil
}

// forget closes a node whose task was not made after all, emitting nothing.
func (c *Center) forget(ctx context.Context, requestID, nodeID string) {
	if c.tracking() {
		_, _ = c.opts.Requests.CloseNode(context.WithoutCancel(ctx), requestID, nodeID)
	}
}

// closeNode marks a task's node ended (its end row written) and emits pipeline_finish when it
// was its request's last unfinished node.
func (c *Center) closeNode(ctx context.Context, requestID, nodeID string) {
	if err := lifecycle.CloseNode(context.WithoutCancel(ctx), c.opts.Requests, c.opts.Signals, requestID, nodeID); err != nil {
		c.opts.Logger.Error("tasks: record the end of a node for pipeline_finish", "node", nodeID, "err", err)
	}
}

// ended says whether a log row records the end of its node.
func ended(r logstore.Row) bool {
	return r.Status == logstore.StatusSuccess || r.Status == logstore.StatusFail
}
