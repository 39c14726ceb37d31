package engine_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/internal/parttest"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

var interruptApp = map[string]string{
	"events/Long/e.json": `{"title": "Long", "type": "events.NormalType", "sender": "s", "retry": {"policy": "none"}}`,
	"events/Long/index.js": `exports.handle = function (event) {
  if (event.kwargs.hold || event.attempt === 1) { app.getElement("services.Probe").gate("long"); }
  return event.attempt;
};`,
}

// stopEngine stops the bundle's engine while its handler is held: the run is cut off and the
// delivery given back unacknowledged, as a host that stops or dies leaves it.
func stopEngine(t *testing.T, b *bundle) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), parttest.WaitLimit)
	defer cancel()
	require.NoError(t, b.eng.Stop(ctx))
}

// A delivery whose host stopped mid-run runs again elsewhere as the next attempt, and the log
// shows both: the first attempt ends interrupted (it is not left running), the second succeeds.
// Before, the re-run was attempt 1 again and the log never showed that the node ran twice.
func TestInterruptedRunShowsAsItsOwnAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t, interruptApp)
	res := b.send("s", map[string]any{})
	node := res.NodeIDs[0]
	b.probe.AwaitHit(t, "long")
	stopEngine(t, b)

	b.newEngine(vocab.NewID("inst_"))
	rows := b.awaitStage(node, logstore.StageDone, 2)
	got := stages(rows)
	require.Contains(t, got, "fail/interrupted@1", "the cut-off attempt ends in the log")
	require.Equal(t, "success/done@2", got[len(got)-1])
	for _, r := range rows {
		if r.Stage == logstore.StageInterrupted {
			require.Equal(t, logstore.StageInterrupted, r.Error.Code)
			require.Contains(t, r.Error.Message, "attempt 2 runs it again")
		}
	}
}

// A message every host taking it stops on is dead-lettered, unrun, once it has been delivered
// more than its retry policy's tries + 3 times: a handler that takes its host down cannot take
// the whole cluster down in turn for ever. Resend runs it again.
func TestEndlesslyInterruptedDeliveryIsDeadLettered(t *testing.T) {
	t.Parallel()
	b := setup(t, interruptApp)
	res := b.send("s", map[string]any{"hold": true})
	node := res.NodeIDs[0]
	// policy none: 1 try + 3 interruptions; the fifth delivery is dead-lettered.
	for range 4 {
		b.probe.AwaitHit(t, "long")
		stopEngine(t, b)
		b.eng = b.newEngine(vocab.NewID("inst_"))
	}
	rows := b.awaitStage(node, logstore.StageDeadLettered, 0)
	last := rows[len(rows)-1]
	require.Equal(t, logstore.StatusFail, last.Status)
	require.Equal(t, 4, last.Attempt)
	require.Contains(t, last.Error.Message, "never acknowledged")
	require.Equal(t, []string{"fail/interrupted@1", "fail/interrupted@2", "fail/interrupted@3"},
		filterStage(stages(rows), "interrupted"))
}

func filterStage(all []string, stage string) []string {
	var out []string
	for _, s := range all {
		if len(s) > len(stage) && s[len("fail/"):len("fail/")+len(stage)] == stage {
			out = append(out, s)
		}
	}
	return out
}
