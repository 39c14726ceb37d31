package engine_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/internal/parttest"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

// retryApp has one listener per way of retrying, each on a sender of its own.
var retryApp = map[string]string{
	"events/None/e.json":   `{"title": "None", "type": "events.NormalType", "sender": "none", "retry": {"policy": "none"}}`,
	"events/None/index.js": `exports.handle = function () { throw new Error("boom"); };`,
	"events/Default/e.json": `{"title": "Default", "type": "events.NormalType", "sender": "default",
		"retry": {"policy": "default", "interval": "30ms", "maxAttempts": 3}}`,
	"events/Default/index.js": `exports.handle = function (event) { throw new Error("boom " + event.attempt); };`,
	"events/Exp/e.json": `{"title": "Exponential", "type": "events.NormalType", "sender": "exp",
		"retry": {"policy": "exponential", "interval": "10ms", "maxInterval": "40ms", "maxAttempts": 4}}`,
	"events/Exp/index.js": `exports.handle = function () { throw new Error("boom"); };`,
	"events/Cyclic/e.json": `{"title": "Cyclic", "type": "events.NormalType", "sender": "cyclic",
		"retry": {"policy": "cyclic", "interval": "20ms", "window": "2s", "maxAttempts": 2}}`,
	"events/Cyclic/index.js": `exports.handle = function () { throw new Error("boom"); };`,
	"events/Flaky/e.json": `{"title": "Flaky", "type": "events.NormalType", "sender": "flaky",
		"retry": {"interval": "10ms", "maxAttempts": 5}}`,
	"events/Flaky/index.js": `exports.handle = function (event) { if (event.attempt < 3) throw new Error("not yet"); return event.attempt; };`,
	"events/Requeue/e.json": `{"title": "Requeue", "type": "events.NormalType", "sender": "requeue",
		"requeueOnError": true, "retry": {"interval": "1h", "maxAttempts": 3}}`,
	"events/Requeue/index.js": `exports.handle = function (event, ctx) { ctx.fail("declined on " + event.attempt); };`,
	"events/RequeueOk/e.json": `{"title": "Requeue, then fine", "type": "events.NormalType", "sender": "requeueOk",
		"requeueOnError": true, "retry": {"maxAttempts": 3}}`,
	"events/RequeueOk/index.js": `exports.handle = function (event, ctx) { if (event.attempt < 2) ctx.fail("not yet"); return "ok"; };`,
}

// failedTries is the stages of a node that failed n tries with stage between them, and whose
// last try ended in final.
func failedTries(n int, between, final string) []string {
	out := []string{"waiting/queued@1"}
	for a := 1; a <= n; a++ {
		out = append(out, fmt.Sprintf("running/running@%d", a))
		if a < n {
			out = append(out, fmt.Sprintf("waiting/%s@%d", between, a))
		}
	}
	return append(out, fmt.Sprintf("%s@%d", final, n))
}

// TestRetryPolicies: each policy's retries, as the log records them, end in a success or a dead
// letter; scheduled retries wait their interval; requeueOnError retries at once and is bounded by
// maxAttempts.
func TestRetryPolicies(t *testing.T) {
	t.Parallel()
	b := setup(t, retryApp)
	cases := []struct {
		sender string
		final  string // the last stage
		want   []string
		code   string                  // the error code of the last row
		gap    func(int) time.Duration // the least wait before try n+1
	}{
		{sender: "none", final: logstore.StageDeadLettered, want: failedTries(1, "", "fail/deadLettered"), code: vocab.CodeJSError},
		{sender: "default", final: logstore.StageDeadLettered, want: failedTries(3, logstore.StageRetryScheduled, "fail/deadLettered"), code: vocab.CodeJSError,
			gap: func(int) time.Duration { return 30 * time.Millisecond }},
		{sender: "exp", final: logstore.StageDeadLettered, want: failedTries(4, logstore.StageRetryScheduled, "fail/deadLettered"), code: vocab.CodeJSError,
			gap: func(n int) time.Duration { return min(10*time.Millisecond<<(n-1), 40*time.Millisecond) / 2 }},
		{sender: "flaky", final: logstore.StageDone, want: failedTries(3, logstore.StageRetryScheduled, "success/done")},
		{sender: "requeue", final: logstore.StageDeadLettered, want: failedTries(3, logstore.StageRequeued, "fail/deadLettered"), code: vocab.CodeFailed},
		{sender: "requeueOk", final: logstore.StageDone, want: failedTries(2, logstore.StageRequeued, "success/done")},
	}
	for _, tc := range cases {
		t.Run(tc.sender, func(t *testing.T) {
			t.Parallel()
			res := b.send(tc.sender, map[string]any{})
			rows := b.awaitStage(res.NodeIDs[0], tc.final, 0)
			require.Equal(t, tc.want, stages(rows))
			last := rows[len(rows)-1]
			if tc.code != "" {
				require.NotNil(t, last.Error)
				require.Equal(t, tc.code, last.Error.Code)
			} else {
				require.Nil(t, last.Error)
			}
			for i, r := range rows {
				require.Equal(t, res.EventID, r.EventID, "retries keep the event id")
				if i > 0 && r.Stage == logstore.StageRetryScheduled && tc.gap != nil {
					next := rows[i+1] // the next try's running row
					require.GreaterOrEqual(t, next.RecordedAt.Sub(r.RecordedAt), tc.gap(r.Attempt)-2*time.Millisecond,
						"try %d waited its interval", next.Attempt)
				}
			}
		})
	}
	t.Run("requeue errors", func(t *testing.T) {
		t.Parallel()
		res := b.send("requeue", map[string]any{})
		rows := b.awaitStage(res.NodeIDs[0], logstore.StageDeadLettered, 0)
		for _, r := range rows {
			if r.Stage == logstore.StageRequeued || r.Stage == logstore.StageDeadLettered {
				require.Equal(t, fmt.Sprintf("declined on %d", r.Attempt), r.Error.Message, "each try records its own error")
			}
		}
	})
	// cyclic retries for as long as its window lasts, whatever maxAttempts says, and then stops:
	// the first try's time travels with every retry.
	t.Run("cyclic", func(t *testing.T) {
		t.Parallel()
		res := b.send("cyclic", map[string]any{})
		rows := b.awaitStage(res.NodeIDs[0], logstore.StageDeadLettered, 0)
		last := rows[len(rows)-1]
		require.Greater(t, last.Attempt, 2, "maxAttempts does not bound cyclic: %v", stages(rows))
		require.Equal(t, failedTries(last.Attempt, logstore.StageRetryScheduled, "fail/deadLettered"), stages(rows))
		firstRun := rows[1]
		lastRun := rows[len(rows)-2]
		// The window is long beside the interval, so even a loaded machine fits more than two
		// tries in it.
		require.LessOrEqual(t, lastRun.RecordedAt.Sub(firstRun.RecordedAt), 2*time.Second+parttest.WaitLimit/20,
			"no try starts long after the window (%v)", stages(rows))
	})
}

// TestBroadcastRetriesStayOnTheReceiver: a broadcast receiver's failed try is retried by the
// same host, holding its delivery, as its node's next attempt.
func TestBroadcastRetriesStayOnTheReceiver(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{
		"events/Every/e.json": `{"title": "Every host", "type": "events.NormalType", "sender": "s", "handlerType": "broadcast",
			"broadcastIdentifier": "host", "retry": {"interval": "20ms", "maxAttempts": 3}}`,
		"events/Every/index.js": `exports.handle = function (event) { if (event.attempt < 3) throw new Error("not yet"); return event.attempt; };`,
	})
	res := b.send("s", map[string]any{})
	rows := b.log.Sink.Await(t, "the receiver's node done", func(rows []logstore.Row) bool {
		for _, r := range rows {
			if r.ParentNodeID == res.NodeIDs[0] && r.Stage == logstore.StageDone {
				return true
			}
		}
		return false
	})
	var receiver string
	for _, r := range rows {
		if r.ParentNodeID == res.NodeIDs[0] {
			receiver = r.NodeID
		}
	}
	require.Equal(t, []string{"running/running@1", "waiting/retryScheduled@1", "running/running@2", "waiting/retryScheduled@2",
		"running/running@3", "success/done@3"}, stages(b.attempts(receiver)))
	lag, err := b.bus.Lag(b.ctx, "retry:listener:events.Every")
	require.NoError(t, err)
	require.Empty(t, lag, "a broadcast retry does not go through the shared retry queue")
}
