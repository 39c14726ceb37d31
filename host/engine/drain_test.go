package engine_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/internal/parttest"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

var drainApp = map[string]string{
	"events/Gated/e.json":   `{"title": "Gated", "type": "events.NormalType", "sender": "s", "retry": {"policy": "none"}}`,
	"events/Gated/index.js": `exports.handle = function (event) { app.getElement("services.Probe").gate("run" + event.kwargs.n); return event.kwargs.n; };`,
}

// Drain lets the run under way finish — success, row and acknowledgement — and takes no new
// delivery: one sent while the engine drains is left for another host, which runs it as its
// first attempt.
func TestDrainLetsRunsFinishAndTakesNoMore(t *testing.T) {
	t.Parallel()
	b := setup(t, drainApp)
	first := b.send("s", map[string]any{"n": int64(1)}).NodeIDs[0]
	b.probe.AwaitHit(t, "run1")

	ctx, cancel := context.WithTimeout(context.Background(), parttest.WaitLimit)
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- b.eng.Drain(ctx) }()
	b.probe.Open("run1")
	require.NoError(t, <-drained)
	rows := b.awaitStage(first, logstore.StageDone, 1)
	require.Equal(t, "success/done@1", stages(rows)[len(rows)-1], "the run finished, not cut off")

	// Sent after the drain: the drained engine (still not stopped) does not take it.
	b.probe.Open("run2")
	second := b.send("s", map[string]any{"n": int64(2)}).NodeIDs[0]
	other := vocab.NewID("inst_")
	b.newEngine(other)
	rows = b.awaitStage(second, logstore.StageDone, 1)
	done := rows[len(rows)-1]
	require.True(t, strings.HasSuffix(done.Host, other), "run by the other host, not the draining one: %s", done.Host)
	require.Equal(t, "success/done@1", stages(rows)[len(rows)-1])

	// A Drain with nothing running returns at once; Stop after it is as before.
	require.NoError(t, b.eng.Drain(ctx))
	require.NoError(t, b.eng.Stop(ctx))
}
