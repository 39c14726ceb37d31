package logstore

// Stages: the finer state a row records beside its status (docs/reference.md §2, "log row").
// Every layer that writes rows names its stages from this list, so queries, the console and the
// engine's own checks (is this node awaiting a callback?) agree on the words.
const (
	// Recorded by the sender of a delivery, before any host runs it.
	StageQueued    = "queued"    // waiting: on the bus for its listener
	StageResent    = "resent"    // waiting: sent again by resend, as its next attempt
	StageBroadcast = "broadcast" // success: a broadcast's own node; each receiver runs a child

	// A run and its outcome.
	StageRunning          = "running"          // running: the handler or task function is executing
	StageDone             = "done"             // success
	StageFailed           = "failed"           // fail: a service call or task run that failed
	StageRetryScheduled   = "retryScheduled"   // waiting: failed, the retry policy tries again later
	StageRequeued         = "requeued"         // waiting: failed, requeueOnError put it back at once
	StageDeadLettered     = "deadLettered"     // fail: the last try failed; resend runs it again
	StageAwaitingCallback = "awaitingCallback" // running: ctx.waitCallback() or an async webhook
	StageCallback         = "callback"         // success: the callback arrived
	StageCallbackFailed   = "callbackFailed"   // fail: the callback reported an error
	StageCallbackTimeout  = "callbackTimeout"  // fail: no callback before the deadline

	// Tasks.
	StageScheduled = "scheduled" // waiting: a task created for a later start time
	StageForcedEnd = "forcedEnd" // fail: forcedEnd(taskId) stopped it

	// Node and request operations (docs/events.md, "Operations").
	StagePaused     = "paused"     // waiting: pause (of the node or its request) holds it until resume
	StageSkipped    = "skipped"    // success: skip ended it without running it
	StageForcedFail = "forcedFail" // fail: forcedFail ended it (a running handler is cancelled)
	StageRevoked    = "revoked"    // fail: its request was revoked before it ran

	// Deliveries that ended without a run's outcome (docs/events.md, "Delivery").
	StageInterrupted = "interrupted" // fail: the host that took this attempt stopped or died first; the next attempt runs it again
	StageDropped     = "dropped"     // fail: reliableDelivery is off and no host ran the listener when it was sent

	// StageLag marks the backlog samples of kind lag.
	StageLag = "lag"
)
