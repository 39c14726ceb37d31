package web

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
)

// deadApp has a listener that always fails and never retries: each event it hears becomes a dead
// letter (fail · deadLettered) at once; and one that succeeds.
var deadApp = map[string]string{
	"app.json":                    `{"name": "dead"}`,
	"events/AlwaysFails/e.json":   `{"title": "Always fails", "type": "events.NormalType", "sender": "shop", "retry": {"policy": "none"}}`,
	"events/AlwaysFails/index.js": `exports.handle = function (event) { throw new Error("no stock for " + event.kwargs.sku); };`,
	"events/Fine/e.json":          `{"title": "Fine", "type": "events.NormalType", "sender": "shop"}`,
	"events/Fine/index.js":        `exports.handle = function (event) {};`,
}

func TestDeadLetters(t *testing.T) {
	t.Parallel()
	handler := setupApp(t, host.SandboxInProcess, deadApp, true)
	logs := func(query string) (page struct {
		TotalCount int64            `json:"totalCount"`
		RowDatas   []map[string]any `json:"rowDatas"`
	}) {
		rec := run(t, handler, scenario{method: "GET", path: "/api/events/logs?" + query, wantStatus: 200})
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &page))
		return page
	}
	for _, sku := range []string{"a", "b"} {
		run(t, handler, scenario{method: "POST", path: "/api/events/send", body: `{"sender": "shop", "kwargs": {"sku": "` + sku + `"}}`, wantStatus: 200})
	}
	require.Eventually(t, func() bool {
		return logs("stage=deadLettered").TotalCount == 2 && logs("fullName=events.Fine&status=success").TotalCount == 2
	}, 20*time.Second, 50*time.Millisecond, "two dead letters and two successes")

	for _, sc := range []scenario{
		{name: "stage alone", method: "GET", path: "/api/events/logs?stage=deadLettered", wantStatus: 200,
			wantIn: []string{`"totalCount":2`, `"stage":"deadLettered"`, `"fullName":"events.AlwaysFails"`, "no stock for"}},
		{name: "stage and status", method: "GET", path: "/api/events/logs?status=fail&stage=deadLettered&fullName=events.AlwaysFails", wantStatus: 200, wantIn: []string{`"totalCount":2`}},
		{name: "stage of another element", method: "GET", path: "/api/events/logs?stage=deadLettered&fullName=events.Fine", wantStatus: 200, wantIn: []string{`"totalCount":0`}},
		{name: "done", method: "GET", path: "/api/events/logs?stage=done", wantStatus: 200, wantIn: []string{`"totalCount":2`, `"fullName":"events.Fine"`}},
		{name: "unknown stage", method: "GET", path: "/api/events/logs?stage=dead", wantStatus: 400, wantIn: []string{"invalid_argument", `stage \"dead\"`, "deadLettered"}},
		{name: "bulk resend refuses an unknown stage", method: "POST", path: "/api/events/resend?stage=dead", wantStatus: 400, wantIn: []string{"stage"}},
	} {
		t.Run(sc.name, func(t *testing.T) { run(t, handler, sc) })
	}

	// Resend one: it runs again as attempt 2, fails again, and is a dead letter again.
	first := logs("stage=deadLettered").RowDatas[0]
	nodeID := first["nodeId"].(string)
	run(t, handler, scenario{method: "POST", path: "/api/nodes/" + nodeID + "/resend", wantStatus: 200, wantIn: []string{`"attempt":2`}})
	require.Eventually(t, func() bool {
		for _, r := range logs("stage=deadLettered").RowDatas {
			if r["nodeId"] == nodeID {
				return r["attempt"] == float64(2)
			}
		}
		return false
	}, 20*time.Second, 50*time.Millisecond, "the resent node dead-lettered again at attempt 2")

	// Resend every dead letter at once: both run again.
	rec := run(t, handler, scenario{method: "POST", path: "/api/events/resend?stage=deadLettered", wantStatus: 200})
	var bulk struct {
		Resent  []map[string]any `json:"resent"`
		Skipped []any            `json:"skipped"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &bulk))
	require.Len(t, bulk.Resent, 2, rec.Body.String())
	require.Empty(t, bulk.Skipped)
	require.Eventually(t, func() bool {
		p := logs("stage=deadLettered")
		if p.TotalCount != 2 {
			return false
		}
		for _, r := range p.RowDatas {
			if r["attempt"] == float64(1) {
				return false
			}
		}
		return true
	}, 20*time.Second, 50*time.Millisecond, "both dead again after the bulk resend")
}
