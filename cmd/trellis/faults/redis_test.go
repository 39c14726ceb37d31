package faults

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/bus/redisbus/redistest"
)

// TestRedisKilledUnderLoad: two hosts on a private Redis configured as docs/cluster.md asks
// (appendonly yes, appendfsync everysec) take events at 100/s while Redis is killed with -9 and
// started again 5 s later on its append-only file. Each host must be back within 10 s of the
// restart — its sendEvent answered 200 and its consumer reading the listener's queue again — and
// every event a sendEvent acknowledged, before the kill or after, must run and end success.
// everysec is enough here because the Redis process dies, not the machine: what Redis
// acknowledged was in the kernel's page cache.
func TestRedisKilledUnderLoad(t *testing.T) {
	s := need(t)
	const (
		hosts = 2
		rate  = 100
		down  = 5 * time.Second
		limit = 10 * time.Second
	)
	r := redistest.New(t, "--appendonly", "yes", "--appendfsync", "everysec", "--save", "")
	t.Cleanup(r.Remove)
	c := newCluster(t, clusterConfig{redis: r.URL(), clickhouse: s.clickhouse, postgres: s.postgres, files: workApp,
		args: []string{"--workers", "1", "--lag-every", "0"}})
	rdb := c.redisClient()
	stream := c.key("listener:events.Work")
	consumer := make([]string, hosts)
	for i := 0; i < hosts; i++ {
		known := consumers(t, rdb, stream)
		c.start(i)
		consumer[i] = newConsumer(t, rdb, stream, known)
	}

	l := c.load("load", rate, 0)
	time.Sleep(10 * time.Second)
	before, _, _ := l.snapshot()
	r.Kill()
	killed := time.Now()
	time.Sleep(down)
	r.Start() // returns once the server answers PING, its append-only file loaded
	restarted := time.Now()

	// Each host's consumer reads the queue again: Redis's idle time of the consumer restarts at
	// each read it makes.
	back := make([]time.Duration, hosts)
	waitFor(t, 30*time.Second, 50*time.Millisecond, "both hosts' consumers read the listener's queue again", func() bool {
		cs, err := rdb.XInfoConsumers(context.Background(), stream, "pool").Result()
		if err != nil {
			return false
		}
		now := time.Now()
		done := true
		for i, name := range consumer {
			for _, cs := range cs {
				if cs.Name == name && back[i] == 0 && now.Add(-cs.Idle).After(restarted) {
					back[i] = now.Add(-cs.Idle).Sub(restarted)
				}
			}
			done = done && back[i] > 0
		}
		return done
	})
	time.Sleep(15 * time.Second)
	l.halt()
	acked, failed, failures := l.snapshot()
	t.Logf("Redis down %s (killed at %s): %d sends acknowledged (%d before the kill), %d refused or failed: %v",
		down, killed.Format("15:04:05.000"), len(acked), len(before), failed, failures)

	// Each host's sendEvent answers 200 again within the limit.
	firstAck := make([]time.Duration, hosts)
	for _, a := range acked {
		if a.answeredAt.After(restarted) && (firstAck[a.host] == 0 || a.answeredAt.Sub(restarted) < firstAck[a.host]) {
			firstAck[a.host] = a.answeredAt.Sub(restarted)
		}
	}
	for i := 0; i < hosts; i++ {
		require.NotZero(t, firstAck[i], "host %d acknowledged no send after Redis came back", i)
		require.LessOrEqual(t, firstAck[i], limit, "host %d: first acknowledged send %s after the restart", i, firstAck[i])
		require.LessOrEqual(t, back[i], limit, "host %d: consumer read again %s after the restart", i, back[i])
	}

	// Nothing acknowledged is lost: every acknowledged event ran and ends success in the log.
	pg := c.pgConn()
	tbl := c.modelTable(pg, "models.Run")
	waitFor(t, 2*time.Minute, 500*time.Millisecond, "every acknowledged event ran", func() bool {
		var n int
		require.NoError(t, pg.QueryRow(context.Background(), `SELECT count(DISTINCT "eventId") FROM `+tbl).Scan(&n))
		return n >= len(acked)
	})
	waitFor(t, 2*time.Minute, time.Second, "every acknowledged event ends success in the log", func() bool {
		return c.count(query("fullName", "events.Work", "status", "success")) >= int64(len(acked))
	})
	nodes := c.nodes(query("fullName", "events.Work"))
	lost := 0
	hostsAfter := map[string]bool{}
	for _, a := range acked {
		r, ok := nodes[a.nodes["events.Work"]]
		if !ok || r.Status != "success" {
			lost++
			if lost <= 10 {
				t.Errorf("event %d acknowledged by host %d at %s: latest state in the log %+v", a.n, a.host, a.answeredAt.Format("15:04:05.000"), r)
			}
			continue
		}
		if a.answeredAt.After(restarted.Add(limit)) {
			hostsAfter[r.Host] = true
		}
	}
	require.Zero(t, lost, "acknowledged events lost")
	require.Len(t, hostsAfter, hosts, "every host runs events after Redis came back: %v", hostsAfter)
	// The handler's first run after the restart, whichever host ran it.
	var firstRun int64
	require.NoError(t, pg.QueryRow(context.Background(), `SELECT coalesce(min(at), 0) FROM `+tbl+` WHERE at >= $1`, restarted.UnixMilli()).Scan(&firstRun))
	require.NotZero(t, firstRun)

	figure(t, "Redis persistence", "appendonly yes, appendfsync everysec; killed with -9, down "+down.String())
	figure(t, "events checked", fmt.Sprintf("%d acknowledged (%d refused while Redis was down)", len(acked), failed))
	figure(t, "lost", lost)
	figure(t, "first acknowledged send per host after the restart", fmt.Sprint(round(firstAck)))
	figure(t, "consumer reading again per host after the restart", fmt.Sprint(round(back)))
	figure(t, "first handler run after the restart", time.UnixMilli(firstRun).Sub(restarted).Round(time.Millisecond))
}

func round(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}
