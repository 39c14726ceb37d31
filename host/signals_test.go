package host_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/backends"
	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/signals"
	"github.com/trellis-run/trellis/logstore"
)

// signalApp has a listener that succeeds or fails as told, and a receiver of what it signals.
func signalApp(name string) map[string]string {
	return map[string]string{
		"app.json":               fmt.Sprintf(`{"name": %q, "signals": {"enabled": true}}`, name),
		"events/OnJob/e.json":    `{"title": "Job", "type": "events.NormalType", "sender": "jobs", "retry": {"policy": "none"}}`,
		"events/OnJob/index.js":  `exports.handle = function (event, ctx) { if (event.kwargs.fail) { ctx.fail("told to"); } return 1; };`,
		"signals/Audit/e.json":   `{"title": "Audit", "type": "signals.NormalType", "eventTypes": ["node_finish", "node_execute_fail"]}`,
		"signals/Audit/index.js": `exports.receive = function (eventType, data) { console.log(eventType + " " + data.node_id); };`,
	}
}

// readAll reads r until cond holds for what it has read.
func readUntil(t *testing.T, r *signals.Reader, cond func([]signals.Record) bool) []signals.Record {
	t.Helper()
	var out []signals.Record
	deadline := time.After(20 * time.Second)
	for !cond(out) {
		recs, _, wake, _ := r.Next(100)
		out = append(out, recs...)
		if len(recs) > 0 {
			continue
		}
		select {
		case <-wake:
		case <-deadline:
			t.Fatalf("signals so far: %+v", out)
		}
	}
	return out
}

func ofNode(recs []signals.Record, node string) []string {
	var out []string
	for _, r := range recs {
		if r.NodeID == node {
			out = append(out, string(r.Type))
		}
	}
	return out
}

// An event a listener handles signals its moments to the stream, once each and in order, and
// the receiver runs for the ones it lists: its call is a row under the node.
func TestSignalsOfAnEventReachTheStreamAndTheReceiver(t *testing.T) {
	t.Parallel()
	dir := writeApp(t, signalApp("sigs"))
	h, err := host.New(host.Config{AppDir: dir, Sandbox: host.SandboxInProcess, ServeEvents: true}, backends.Open)
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, h.Start(ctx))
	t.Cleanup(func() { _ = h.Stop(ctx) })
	r, _, err := h.SignalsFrom("")
	require.NoError(t, err)

	ok, err := h.SendEvent(ctx, engine.SendRequest{Sender: "jobs", Kwargs: map[string]any{}})
	require.NoError(t, err)
	bad, err := h.SendEvent(ctx, engine.SendRequest{Sender: "jobs", Kwargs: map[string]any{"fail": true}})
	require.NoError(t, err)
	okNode, badNode := ok.NodeIDs[0], bad.NodeIDs[0]
	recs := readUntil(t, r, func(recs []signals.Record) bool {
		return len(ofNode(recs, okNode)) >= 3 && len(ofNode(recs, badNode)) >= 3
	})
	// Each request has one node: its end finishes the request.
	require.Equal(t, []string{"node_enter", "node_finish", "pipeline_finish"}, ofNode(recs, okNode))
	require.Equal(t, []string{"node_enter", "node_execute_fail", "pipeline_finish"}, ofNode(recs, badNode))
	for _, rec := range recs {
		if rec.NodeID == okNode && rec.Type != "pipeline_finish" {
			require.Equal(t, ok.RequestID, rec.Data["root_pipeline_id"])
			require.Equal(t, okNode, rec.Data["node_id"])
			require.Equal(t, "events.OnJob", rec.Element)
		}
	}

	for node, want := range map[string]string{okNode: "node_finish " + okNode, badNode: "node_execute_fail " + badNode} {
		require.Eventually(t, func() bool {
			require.NoError(t, h.LogWriter().Flush(ctx))
			rows, err := h.LogStore().Query(ctx, logstore.Query{FullName: "signals.Audit", Page: 1, PageSize: 10})
			require.NoError(t, err)
			for _, row := range rows.RowDatas {
				if row.ParentNodeID == node && row.Kind == signals.KindSignal && row.Status == logstore.StatusSuccess {
					return strings.Contains(string(row.Logs), want)
				}
			}
			return false
		}, 20*time.Second, 20*time.Millisecond, "the receiver's row under %s", node)
	}
}

// Two hosts on one Redis: each stream shows both hosts' signals, with the same ids.
func TestClusterHostsSeeEachOthersSignals(t *testing.T) {
	t.Parallel()
	url := redisURL(t)
	app := fmt.Sprintf("sigcluster%d", time.Now().UnixNano())
	dir := writeApp(t, signalApp(app))
	var hosts []*host.Host
	var readers []*signals.Reader
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		h, err := host.New(host.Config{AppDir: dir, DataDir: t.TempDir(), Sandbox: host.SandboxInProcess, ServeEvents: true, RedisURL: url}, backends.Open)
		require.NoError(t, err)
		require.NoError(t, h.Start(ctx))
		t.Cleanup(func() { _ = h.Stop(ctx) })
		r, _, err := h.SignalsFrom("")
		require.NoError(t, err)
		hosts, readers = append(hosts, h), append(readers, r)
	}
	var nodes []string
	for i := 0; i < 6; i++ {
		res, err := hosts[i%2].SendEvent(ctx, engine.SendRequest{Sender: "jobs", Kwargs: map[string]any{}})
		require.NoError(t, err)
		nodes = append(nodes, res.NodeIDs...)
	}
	var seen [2]map[string]string // node_finish id by node, per host
	for i, r := range readers {
		recs := readUntil(t, r, func(recs []signals.Record) bool {
			for _, n := range nodes {
				if len(ofNode(recs, n)) < 2 {
					return false
				}
			}
			return true
		})
		seen[i] = map[string]string{}
		hostsSeen := map[string]bool{}
		for _, rec := range recs {
			if rec.Type == "node_finish" {
				seen[i][rec.NodeID] = rec.ID
			}
			hostsSeen[rec.Host] = true
		}
		require.Len(t, hostsSeen, 2, "host %d's stream holds signals of both hosts (listeners ran on both, or prepare signals came from both)", i)
	}
	require.Equal(t, seen[0], seen[1], "both hosts give each signal the same id: a client may resume on either")
}
