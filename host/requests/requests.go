// Package requests keeps which nodes of each request are still unfinished, so that the end of
// the last one is known once, on whichever host it happens: the pipeline_finish signal
// (docs/signals.md). In bamboo-pipeline a pipeline is one run; here it is one request.
package requests

import "context"

// Tracker holds, per request, the set of its unfinished nodes (waiting, running, paused,
// awaiting a callback, waiting for a retry).
//
// Contract:
//   - OpenNodes marks nodeID of requestID unfinished. Opening an open node changes nothing. A node
//     must be opened before the node that creates it is closed (a handler's sendEvent opens
//     the new nodes during the handler's run, before its own node closes), else the request
//     may finish early.
//   - CloseNode marks it finished and reports whether this call finished the request: the node was
//     open and no other node of the request is. A duplicate CloseNode (an at-least-once
//     redelivery that ran twice) finds the node closed already and reports false, so it neither
//     finishes the request early nor twice. Among concurrent CloseNodes of a request's last nodes,
//     exactly one reports true.
//   - A node opened again after the request finished (a resend or retry) makes the request
//     unfinished again; the CloseNode that ends it reports true once more.
//   - Both are durable once they return (they survive a host restart) and atomic; the state of
//     a request nobody touches expires after the implementation's retention (at least a week),
//     so abandoned requests do not pile up.
//   - Safe for concurrent use, from many hosts sharing the backend.
type Tracker interface {
	OpenNodes(ctx context.Context, requestID string, nodeIDs ...string) error
	CloseNode(ctx context.Context, requestID, nodeID string) (finished bool, err error)
}

// Retention is how long an untouched request's state is kept: 7 days, longer than any retry
// policy, callback deadline or pause in practice. A request whose nodes end later than that
// after its last change does not emit pipeline_finish.
const Retention = 7 * 24 * 60 * 60 // seconds
