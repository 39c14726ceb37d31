// Package engine is the event center: it turns sendEvent into one node per matching listener,
// delivers each over the bus to whichever host takes it (pool), to one listener of a singleton
// set, or to every host (broadcast), runs the handler in the sandbox, and records every change of
// state in the execution log; failed nodes are retried by their listener's policy and end as dead
// letters that can be resent.
//
// It owns delivery semantics and node bookkeeping. It does not own storage (bus, logstore), the
// sandbox (jsvm), or app loading (registry): the host hands it those.
package engine
