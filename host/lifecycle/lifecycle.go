// Package lifecycle names the moments of a node's and a request's life that Trellis announces,
// after bamboo-pipeline (CONTRACT §5, docs/reference.md §5): a node entering its handler,
// finishing, failing, throwing, and each node or request operation before and after it happens.
//
// Two kinds of listeners hear them, and this package is the seam between those who announce
// (the engine, the task center, the operations) and those who listen:
//   - hooks: functions a node's own element exports (needRunHook: true), called with the node's
//     data and its parent's — the announcer calls them itself, because non-read-only hooks may
//     change what the node saves;
//   - signals: receivers of the whole app (signals.NormalType elements, the SSE stream, a Redis
//     stream), handed {event_type, data} through an Emitter.
//
// In bamboo-pipeline a pipeline is one run of a process; its counterpart here is a request (a
// sendEvent, an HTTP or CLI call and everything it causes), so root_pipeline_id is a requestId.
package lifecycle

import (
	"context"
	"time"

	"github.com/trellis-run/trellis/host/requests"
)

// Type is a moment's name, as the seed spells it (snake_case, the names users export and filter
// by).
type Type string

// The moments of a node.
const (
	NodeEnter            Type = "node_enter"             // before the handler runs (each try)
	NodeFinish           Type = "node_finish"            // the node ended successfully
	NodeExecuteFail      Type = "node_execute_fail"      // the handler called ctx.fail (not with ignoreFailure)
	NodeExecuteException Type = "node_execute_exception" // the handler threw, or timed out

	PreResumeNode          Type = "pre_resume_node"
	PostResumeNode         Type = "post_resume_node"
	PrePauseNode           Type = "pre_pause_node"
	PostPauseNode          Type = "post_pause_node"
	PreRetryNode           Type = "pre_retry_node"
	PostRetryNode          Type = "post_retry_node"
	PreSkipNode            Type = "pre_skip_node"
	PostSkipNode           Type = "post_skip_node"
	PreForcedFailActivity  Type = "pre_forced_fail_activity"
	PostForcedFailActivity Type = "post_forced_fail_activity"
	PreCallback            Type = "pre_callback"
	PostCallback           Type = "post_callback"
)

// The moments of a request (a pipeline, in the seed's words).
const (
	PrePrepareRunPipeline  Type = "pre_prepare_run_pipeline"
	PostPrepareRunPipeline Type = "post_prepare_run_pipeline"
	PrePausePipeline       Type = "pre_pause_pipeline"
	PostPausePipeline      Type = "post_pause_pipeline"
	PreRevokePipeline      Type = "pre_revoke_pipeline"
	PostRevokePipeline     Type = "post_revoke_pipeline"
	PreResumePipeline      Type = "pre_resume_pipeline"
	PostResumePipeline     Type = "post_resume_pipeline"
	PipelineFinish         Type = "pipeline_finish"
)

// Hooks are the moments a node's element may export a function for, in the seed's table order.
var Hooks = []Type{
	PreResumeNode, PostResumeNode, PrePauseNode, PostPauseNode, PreRetryNode, PostRetryNode,
	PreSkipNode, PostSkipNode, PreForcedFailActivity, PostForcedFailActivity, PreCallback, PostCallback,
	NodeExecuteFail, NodeExecuteException, NodeEnter, NodeFinish,
}

// Signals are every moment a signal is emitted for.
var Signals = append(append([]Type{}, Hooks...),
	PrePrepareRunPipeline, PostPrepareRunPipeline, PrePausePipeline, PostPausePipeline,
	PreRevokePipeline, PostRevokePipeline, PreResumePipeline, PostResumePipeline, PipelineFinish)

// ReadOnly reports whether a hook of t sees data it cannot change: the operations' hooks run
// beside the operation (the seed's "数据只读"), so whatever they do to data is discarded. The
// others — node_enter, node_finish, node_execute_fail, node_execute_exception — may change the
// node's data, and the changes are kept.
func ReadOnly(t Type) bool {
	switch t {
	case NodeEnter, NodeFinish, NodeExecuteFail, NodeExecuteException:
		return false
	}
	return true
}

// IsHook reports whether t is a moment a node's element may export a function for.
func IsHook(name string) bool {
	for _, h := range Hooks {
		if string(h) == name {
			return true
		}
	}
	return false
}

// Signal is one emitted moment: the seed's {event_type, data}, plus where it comes from. Data
// holds the seed's fields for the type (node_id, root_pipeline_id, ex_data, pipeline_id…).
type Signal struct {
	Type Type           `json:"event_type"`
	Data map[string]any `json:"data"`
	// At is when it happened; RequestID and NodeID say where ("" for what has none).
	At        time.Time `json:"at"`
	RequestID string    `json:"requestId,omitempty"`
	NodeID    string    `json:"nodeId,omitempty"`
	// Element is the node's element (a listener or a task template), "" for a request's moment.
	Element string `json:"element,omitempty"`
}

// Emitter hands signals to their receivers. Emit returns once every receiver that runs
// synchronously has had it, or its time is up: a slow or failing receiver costs the announcer
// at most that time and never changes the node's outcome. A nil Emitter, or one of an app with
// signals off, emits nothing.
type Emitter interface {
	Emit(ctx context.Context, s Signal)
}

// CloseNode tells tr (requests.Tracker) that the node ended — its end recorded — and emits
// pipeline_finish to s when that left the request without an unfinished node
// (docs/signals.md). A nil tr or s does nothing.
func CloseNode(ctx context.Context, tr requests.Tracker, s Emitter, requestID, nodeID string) error {
	if tr == nil || s == nil {
		return nil
	}
	finished, err := tr.CloseNode(ctx, requestID, nodeID)
	if err != nil {
		return err
	}
	if finished {
		s.Emit(ctx, Signal{Type: PipelineFinish, At: time.Now(), RequestID: requestID, NodeID: nodeID,
			Data: map[string]any{"root_pipeline_id": requestID, "node_id": nodeID}})
	}
	return nil
}
