package faults

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// workApp is a pool listener whose every run writes a row to PostgreSQL before it returns: the
// rows count the handler's runs independently of the execution log. Retries are quick, so the
// scenario's time goes to the faults, not to waiting.
var workApp = map[string]string{
	"models/Run/e.json": `{"title": "Run", "type": "models.NormalType", "fields": [
		{"name": "id", "type": "AutoInt"}, {"name": "eventId", "type": "Stext"},
		{"name": "n", "type": "Integer"}, {"name": "attempt", "type": "Integer"}, {"name": "at", "type": "Integer"}]}`,
	"events/Work/e.json": `{"title": "Work", "type": "events.NormalType", "sender": "load",
		"retry": {"policy": "default", "interval": "1s", "maxAttempts": 5}}`,
	"events/Work/index.js": `exports.handle = function (event) {
		app.getElement("models.Run").create({eventId: event.id, n: event.kwargs.n, attempt: event.attempt, at: Date.now()});
		return event.kwargs.n;
	};`,
}

// hookListener is a pool listener handing each event to a webhook receiver at url.
func hookListener(url string) string {
	return fmt.Sprintf(`{"title": "Hook", "type": "events.NormalType", "sender": "load",
		"webhook": {"url": %q, "mode": "sync", "timeout": "10s"},
		"retry": {"policy": "default", "interval": "1s", "maxAttempts": 5}}`, url)
}

// TestKill9EveryTwentySeconds: three hosts on Redis, ClickHouse and PostgreSQL take 10,000
// events offered at 200/s while one host's whole process group is killed with -9 every 20 s and
// started again on an empty data directory, as a container is. Each event has two listeners: a
// JS handler that writes a row to PostgreSQL (quick) and a webhook whose receiver answers after
// 250 ms (slow: a kill always finds some of its runs under way); both count their runs outside
// the log. Every acknowledged event must run to success at least once for each and end success
// in the shared log, each run must show in the log as an attempt of its own, and the extra runs
// of each listener must not exceed what the killed hosts held unacknowledged when they died.
func TestKill9EveryTwentySeconds(t *testing.T) {
	s := need(t)
	const (
		hosts  = 3
		events = 10_000
		rate   = 200
		kills  = 3
	)
	hook := newHookServer(t, 250*time.Millisecond)
	files := map[string]string{"events/Hook/e.json": hookListener(hook.srv.URL + "/hook")}
	for k, v := range workApp {
		files[k] = v
	}
	c := newCluster(t, clusterConfig{redis: s.redis, clickhouse: s.clickhouse, postgres: s.postgres, files: files,
		appJSON: map[string]any{"webhooks": map[string]any{"allowPrivateNetwork": true}},
		args:    []string{"--claim-timeout", "5s", "--workers", "1", "--lag-every", "0"}})
	rdb := c.redisClient()
	streams := map[string]string{"events.Work": c.key("listener:events.Work"), "events.Hook": c.key("listener:events.Hook")}
	consumer := make([]string, hosts) // each host's consumer name in the listeners' groups
	for i := 0; i < hosts; i++ {
		known := consumers(t, rdb, streams["events.Work"])
		c.start(i)
		consumer[i] = newConsumer(t, rdb, streams["events.Work"], known)
	}

	began := time.Now()
	l := c.load("load", rate, events)
	inFlight := map[string][]int64{}
	var restarts []time.Duration
	var lastKill time.Time
	for k := 0; k < kills; k++ {
		time.Sleep(time.Until(began.Add(10*time.Second + time.Duration(k)*20*time.Second)))
		v := k % hosts
		c.killHost(v)
		lastKill = time.Now()
		// What the dead host held: its deliveries taken and not acknowledged, read now that it
		// can take no more; the survivors claim them after the claim timeout.
		for name, stream := range streams {
			pend, err := rdb.XPending(context.Background(), stream, "pool").Result()
			require.NoError(t, err)
			inFlight[name] = append(inFlight[name], pend.Consumers[consumer[v]])
		}
		known := consumers(t, rdb, streams["events.Work"])
		c.start(v)
		consumer[v] = newConsumer(t, rdb, streams["events.Work"], known)
		restarts = append(restarts, time.Since(lastKill))
		t.Logf("kill %d: host %d at %s held %d Work and %d Hook deliveries; serving again after %s", k+1, v,
			lastKill.Sub(began).Round(time.Millisecond), inFlight["events.Work"][k], inFlight["events.Hook"][k], restarts[k].Round(time.Millisecond))
	}
	l.wait()
	acked, failed, failures := l.snapshot()
	sendTime := time.Since(began)
	require.Zero(t, failed, "sends to live hosts failed: %v", failures)
	require.Len(t, acked, events)

	// Every acknowledged event ran at least once for each listener …
	pg := c.pgConn()
	tbl := c.modelTable(pg, "models.Run")
	ran := waitFor(t, 3*time.Minute, 500*time.Millisecond, "every acknowledged event ran", func() bool {
		var n int
		require.NoError(t, pg.QueryRow(context.Background(), `SELECT count(DISTINCT "eventId") FROM `+tbl).Scan(&n))
		return n >= events && len(hook.snapshot()) >= events
	})
	// … and ends success in the shared log, read through a live host.
	settled := waitFor(t, 3*time.Minute, time.Second, "every acknowledged event ends success in the log", func() bool {
		return c.count(query("fullName", "events.Work", "status", "success")) >= events &&
			c.count(query("fullName", "events.Hook", "status", "success")) >= events
	})
	t.Logf("after the last send (%s): every event ran within %s, the log settled %s later", sendTime.Round(time.Millisecond), ran.Round(time.Millisecond), settled.Round(time.Millisecond))
	lost := 0
	latest := map[string]map[string]logRow{} // listener → event id → latest row of its node
	for name := range streams {
		nodes := c.nodes(query("fullName", name))
		require.Len(t, nodes, events, "the log holds exactly the acknowledged events' nodes of %s", name)
		latest[name] = map[string]logRow{}
		for _, a := range acked {
			r, ok := nodes[a.nodes[name]]
			if !ok || r.Status != "success" {
				lost++
				if lost <= 10 {
					t.Errorf("event %d (%s node %s) acknowledged by host %d: latest state in the log %+v", a.n, name, a.nodes[name], a.host, r)
				}
			}
			latest[name][a.eventID] = r
		}
	}
	require.Zero(t, lost, "acknowledged events without a final success in the log")

	// Runs per event and listener: each run is its own attempt (a node that ran twice shows
	// twice in the log), and the extra runs are bounded by what the killed hosts held.
	runs := map[string]map[string][]int{"events.Hook": hook.snapshot(), "events.Work": {}}
	rows, err := pg.Query(context.Background(), `SELECT "eventId", attempt FROM `+tbl)
	require.NoError(t, err)
	for rows.Next() {
		var id string
		var attempt int
		require.NoError(t, rows.Scan(&id, &attempt))
		runs["events.Work"][id] = append(runs["events.Work"][id], attempt)
	}
	require.NoError(t, rows.Err())
	for name, byEvent := range runs {
		duplicates, rerun := 0, 0
		var twice []string
		for id, attempts := range byEvent {
			r, ok := latest[name][id]
			require.True(t, ok, "%s ran event %s, which nobody sent", name, id)
			seen := map[int]bool{}
			for _, a := range attempts {
				require.False(t, seen[a], "%s ran event %s twice as attempt %d (%v): a re-run the log does not show", name, id, a, attempts)
				seen[a] = true
				require.GreaterOrEqual(t, r.Attempt, a, "%s ran event %s as attempt %d but the log's latest attempt is %d", name, id, a, r.Attempt)
			}
			duplicates += len(attempts) - 1
			if len(attempts) > 1 {
				rerun++
				if len(twice) < 5 {
					twice = append(twice, r.NodeID)
				}
			}
		}
		var held int64
		for _, n := range inFlight[name] {
			held += n
		}
		if int64(duplicates) > held {
			// Which hosts ran them, and when: a live host that stalled past the claim timeout
			// loses its deliveries too (at least once), which no kill explains.
			for _, node := range twice {
				var rows []logRow
				c.get(c.any(), "/api/events/nodes/"+node+"/attempts", &rows)
				t.Logf("%s node %s: %+v", name, node, rows)
			}
			t.Fatalf("%s: extra runs (%d) exceed what the killed hosts held (%v)", name, duplicates, inFlight[name])
		}
		retried := 0
		for _, r := range latest[name] {
			if r.Attempt > 1 {
				retried++
			}
		}
		figure(t, name+" duplicate runs", fmt.Sprintf("%d (of %d events), bound %d = held at each kill %v; nodes whose latest attempt > 1: %d", duplicates, rerun, held, inFlight[name], retried))
	}

	figure(t, "kills survived", kills)
	figure(t, "events checked", fmt.Sprintf("%d (%d nodes)", events, events*len(streams)))
	figure(t, "lost", lost)
	figure(t, "restart to serving", fmt.Sprint(restarts))
	figure(t, "sends took", sendTime.Round(time.Millisecond))
	figure(t, "all ran / log settled after the last send", fmt.Sprintf("%s / %s", ran.Round(time.Second), (ran+settled).Round(time.Second)))
	figure(t, "last kill to log settled", time.Since(lastKill).Round(time.Second))
}

// consumers are the names of the consumers of the pool group of stream (none before it exists).
func consumers(t *testing.T, rdb *redis.Client, stream string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	cs, err := rdb.XInfoConsumers(context.Background(), stream, "pool").Result()
	if err != nil && !isNoStream(err) {
		require.NoError(t, err)
	}
	for _, c := range cs {
		out[c.Name] = true
	}
	return out
}

func isNoStream(err error) bool {
	return errors.Is(err, redis.Nil) || err != nil && (err.Error() == "ERR no such key" || len(err.Error()) >= 7 && err.Error()[:7] == "NOGROUP")
}

// newConsumer waits for a consumer of stream's pool group not in known: the host just started.
func newConsumer(t *testing.T, rdb *redis.Client, stream string, known map[string]bool) string {
	t.Helper()
	var name string
	waitFor(t, 30*time.Second, 20*time.Millisecond, "the started host reads the listener's queue", func() bool {
		for n := range consumers(t, rdb, stream) {
			if !known[n] {
				name = n
				return true
			}
		}
		return false
	})
	return name
}
