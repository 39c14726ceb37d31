package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestPoisonEvent: a handler that always throws, on two hosts, is tried exactly maxAttempts (3)
// times, then dead-lettered and tried no more; a bulk resend (POST /api/events/resend) runs each
// dead letter again as its next attempt, and a node retry (POST /api/nodes/{id}/retry) once more.
// The handler counts its own runs in PostgreSQL, so the log is checked against them.
func TestPoisonEvent(t *testing.T) {
	s := need(t)
	const (
		events      = 3
		maxAttempts = 3
	)
	c := newCluster(t, clusterConfig{redis: s.redis, clickhouse: s.clickhouse, postgres: s.postgres,
		files: map[string]string{
			"models/Run/e.json": workApp["models/Run/e.json"],
			"events/Poison/e.json": fmt.Sprintf(`{"title": "Poison", "type": "events.NormalType", "sender": "poison",
				"retry": {"policy": "default", "interval": "1s", "maxAttempts": %d}}`, maxAttempts),
			"events/Poison/index.js": `exports.handle = function (event) {
				app.getElement("models.Run").create({eventId: event.id, n: event.kwargs.n, attempt: event.attempt, at: Date.now()});
				throw new Error("poison, attempt " + event.attempt);
			};`,
		},
		args: []string{"--workers", "1", "--lag-every", "0"}})
	c.start(0)
	c.start(1)
	ctx := context.Background()
	nodeOf := map[string]string{} // event id → node
	for i := 0; i < events; i++ {
		code, body, err := c.live()[i%2].do(ctx, "POST", "/api/events/send", map[string]any{"sender": "poison", "kwargs": map[string]any{"n": i}})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code, "%s", body)
		var res struct {
			EventID string   `json:"eventId"`
			NodeIDs []string `json:"nodeIds"`
		}
		require.NoError(t, json.Unmarshal(body, &res))
		require.Len(t, res.NodeIDs, 1)
		nodeOf[res.EventID] = res.NodeIDs[0]
	}

	pg := c.pgConn()
	tbl := c.modelTable(pg, "models.Run")
	runs := func() map[string][]int {
		rows, err := pg.Query(ctx, `SELECT "eventId", attempt FROM `+tbl+` ORDER BY attempt`)
		require.NoError(t, err)
		defer rows.Close()
		out := map[string][]int{}
		for rows.Next() {
			var id string
			var a int
			require.NoError(t, rows.Scan(&id, &a))
			out[id] = append(out[id], a)
		}
		require.NoError(t, rows.Err())
		return out
	}
	dead := waitFor(t, time.Minute, 200*time.Millisecond, "every poison event is dead-lettered", func() bool {
		return c.count(query("fullName", "events.Poison", "stage", "deadLettered")) == events
	})
	// A dead letter is tried no more: the count stays at maxAttempts a while later.
	time.Sleep(3 * time.Second)
	got := runs()
	require.Len(t, got, events)
	for id, attempts := range got {
		require.Equal(t, []int{1, 2, 3}, attempts, "event %s: runs before the dead letter", id)
		var rows []logRow
		c.get(c.any(), "/api/events/nodes/"+nodeOf[id]+"/attempts", &rows)
		running, last := 0, rows[len(rows)-1]
		for _, r := range rows {
			if r.Stage == "running" {
				running++
			}
		}
		require.Equal(t, maxAttempts, running, "event %s: tries in the log: %+v", id, rows)
		require.Equal(t, "fail", last.Status, "%+v", rows)
		require.Equal(t, "deadLettered", last.Stage, "%+v", rows)
		require.Equal(t, maxAttempts, last.Attempt)
	}

	// Resend every dead letter of the listener: each runs again as attempt 4.
	code, body, err := c.any().do(ctx, "POST", "/api/events/resend?"+query("fullName", "events.Poison", "stage", "deadLettered"), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, "%s", body)
	var bulk struct {
		Resent []struct {
			NodeID  string `json:"nodeId"`
			Attempt int    `json:"attempt"`
		} `json:"resent"`
	}
	require.NoError(t, json.Unmarshal(body, &bulk))
	require.Len(t, bulk.Resent, events, "%s", body)
	for _, r := range bulk.Resent {
		require.Equal(t, maxAttempts+1, r.Attempt, "%s", body)
	}
	ranAgain := waitFor(t, 30*time.Second, 100*time.Millisecond, "every resent event runs", func() bool {
		for _, attempts := range runs() {
			if len(attempts) < maxAttempts+1 {
				return false
			}
		}
		return true
	})
	waitFor(t, 30*time.Second, 200*time.Millisecond, "the resent events end failed again", func() bool {
		return c.count(query("fullName", "events.Poison", "status", "fail")) == events &&
			c.count(query("fullName", "events.Poison", "status", "running")) == 0 &&
			c.count(query("fullName", "events.Poison", "status", "waiting")) == 0
	})

	// A node retry runs one of them once more.
	ids := make([]string, 0, len(nodeOf))
	for id := range nodeOf {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	code, body, err = c.any().do(ctx, "POST", "/api/nodes/"+nodeOf[ids[0]]+"/retry", nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, "%s", body)
	waitFor(t, 30*time.Second, 100*time.Millisecond, "the retried node runs", func() bool {
		return len(runs()[ids[0]]) == maxAttempts+2
	})
	time.Sleep(3 * time.Second)
	final := runs()
	for _, id := range ids {
		want := []int{1, 2, 3, 4}
		if id == ids[0] {
			want = append(want, 5)
		}
		require.Equal(t, want, final[id], "event %s: every run, resend and retry included", id)
	}

	figure(t, "poison events", events)
	figure(t, "tries before the dead letter", fmt.Sprintf("%d of maxAttempts %d, none after", maxAttempts, maxAttempts))
	figure(t, "dead-lettered after the send", dead.Round(100*time.Millisecond))
	figure(t, "resend ran after", ranAgain.Round(100*time.Millisecond))
}
