package engine_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/logstore"
)

// lagSamples are the lag rows of listener written so far, oldest first.
func lagSamples(t *testing.T, rows []logstore.Row, listener string) []engine.LagSample {
	t.Helper()
	var out []engine.LagSample
	for _, r := range rows {
		if r.Kind == logstore.KindLag && r.FullName == logstore.LagPrefix+listener {
			var s engine.LagSample
			require.NoError(t, json.Unmarshal(r.Result, &s))
			out = append(out, s)
		}
	}
	return out
}

// TestLagSamples: while a listener has a backlog each sampling writes a lag row with its pending
// and undelivered deliveries; once drained one more row says so, and then an idle listener
// writes none.
func TestLagSamples(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{
		"events/Slow/e.json":   `{"title": "Slow", "type": "events.NormalType", "sender": "slow"}`,
		"events/Slow/index.js": `exports.handle = function () { app.getElement("services.Probe").gate("slow"); };`,
		"events/Busy/e.json":   `{"title": "Busy", "type": "events.NormalType", "sender": "busy"}`,
		"events/Busy/index.js": `exports.handle = function () { app.getElement("services.Probe").gate("busy"); };`,
		"events/Idle/e.json":   `{"title": "Idle", "type": "events.NormalType", "sender": "idle"}`,
		"events/Idle/index.js": `exports.handle = function () {};`,
	}, func(o *engine.Options) { o.LagEvery, o.Prefetch = 20*time.Millisecond, 1 })

	for range 3 {
		b.send("slow", map[string]any{})
	}
	b.send("busy", map[string]any{})
	b.send("busy", map[string]any{})

	// With a prefetch of 1, one delivery is taken and held, the others wait on the bus.
	want := engine.LagSample{Pending: 1, Undelivered: 2, Groups: []bus.GroupLag{{Group: "pool", Pending: 1, Undelivered: 2, Consumers: 1}}}
	rows := b.log.Sink.Await(t, "a sample of Slow's backlog", func(rows []logstore.Row) bool {
		for _, s := range lagSamples(t, rows, "events.Slow") {
			if s.Pending == 1 && s.Undelivered == 2 {
				return true
			}
		}
		return false
	})
	require.Contains(t, lagSamples(t, rows, "events.Slow"), want)
	for _, r := range rows {
		if r.Kind != logstore.KindLag {
			continue
		}
		require.Equal(t, logstore.StageLag, r.Stage)
		require.Equal(t, logstore.StatusSuccess, r.Status)
		require.Equal(t, b.rec.Host(), r.Host)
		require.Equal(t, r.FullName, r.RequestID)
		require.NotEqual(t, logstore.LagPrefix+"events.Idle", r.FullName, "a listener that never had a backlog writes no samples")
	}
	lag, err := b.eng.Lag(b.ctx)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"events.Busy", "events.Idle", "events.Slow"}, keys(lag))

	// Drained: one more sample says so, then none while Busy's backlog keeps being sampled.
	b.probe.Open("slow")
	rows = b.log.Sink.Await(t, "a sample of Slow drained", func(rows []logstore.Row) bool {
		s := lagSamples(t, rows, "events.Slow")
		return len(s) > 0 && s[len(s)-1].Pending+s[len(s)-1].Undelivered == 0
	})
	slow, busy := len(lagSamples(t, rows, "events.Slow")), len(lagSamples(t, rows, "events.Busy"))
	rows = b.log.Sink.Await(t, "three more samples of Busy", func(rows []logstore.Row) bool {
		return len(lagSamples(t, rows, "events.Busy")) >= busy+3
	})
	require.Len(t, lagSamples(t, rows, "events.Slow"), slow, "a drained listener writes no more samples")
	b.probe.Open("busy")

	// Lag rows stay out of queries over every element.
	require.NoError(t, b.log.Writer.Flush(b.ctx))
	page, err := b.log.Store.Query(b.ctx, logstore.Query{PageSize: logstore.MaxPageSize})
	require.NoError(t, err)
	for _, r := range page.RowDatas {
		require.Equal(t, logstore.KindEvent, r.Kind)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
