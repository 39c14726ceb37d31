package faults

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/require"
)

// privateClickHouse is a ClickHouse server of the test's own, started and stopped by
// scripts/services.sh in a directory and on ports of its own: the shared server other suites
// use is never stopped.
type privateClickHouse struct {
	t   *testing.T
	env []string
	dsn string
}

func startClickHouse(t *testing.T) *privateClickHouse {
	t.Helper()
	dir, err := os.MkdirTemp("", "trellis-fault-clickhouse-")
	require.NoError(t, err)
	port, httpPort := freePort(t), freePort(t)
	ch := &privateClickHouse{t: t, env: []string{"TRELLIS_SERVICES_DIR=" + dir,
		"TRELLIS_CLICKHOUSE_PORT=" + strconv.Itoa(port), "TRELLIS_CLICKHOUSE_HTTP_PORT=" + strconv.Itoa(httpPort)}}
	ch.dsn = fmt.Sprintf("clickhouse://127.0.0.1:%d/default", port)
	t.Cleanup(func() {
		ch.services("stop")
		_ = os.RemoveAll(dir)
	})
	ch.services("start")
	return ch
}

// services runs scripts/services.sh OP clickhouse for the private server.
func (ch *privateClickHouse) services(op string) {
	ch.t.Helper()
	cmd := exec.Command("bash", filepath.Join("..", "..", "..", "scripts", "services.sh"), op, "clickhouse")
	cmd.Env = append(os.Environ(), ch.env...)
	out, err := cmd.CombinedOutput()
	require.NoError(ch.t, err, "services.sh %s clickhouse: %s", op, out)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestClickHouseDownAtPeak: two hosts take events at 200/s while their ClickHouse is stopped
// for 60 s and started again. Meanwhile the hosts must keep taking and running events (the log's
// rows wait in the buffer on Redis, trellis:<app>:log:spool); once ClickHouse is back the buffer
// must hold nothing from before the restart within twice the outage, and every acknowledged
// event's rows — queued, running, done (and interrupted, for an attempt another host took over)
// — must each be in the log exactly once.
func TestClickHouseDownAtPeak(t *testing.T) {
	s := need(t)
	const (
		rate   = 200
		outage = 60 * time.Second
	)
	ch := startClickHouse(t)
	c := newCluster(t, clusterConfig{redis: s.redis, clickhouse: ch.dsn, postgres: s.postgres, files: workApp,
		args: []string{"--workers", "1", "--lag-every", "0"}})
	c.start(0)
	c.start(1)
	rdb := c.redisClient()
	spool := c.key("log:spool")
	ctx := context.Background()

	l := c.load("load", rate, 0)
	time.Sleep(15 * time.Second)
	ch.services("stop")
	stopped := time.Now()
	var peak int64
	for time.Since(stopped) < outage {
		n, err := rdb.XLen(ctx, spool).Result()
		require.NoError(t, err)
		peak = max(peak, n)
		time.Sleep(250 * time.Millisecond)
	}
	during, _, _ := l.snapshot()
	ch.services("start")
	restarted := time.Now()

	// Drained: the buffer's oldest entry is younger than the restart (entries leave it once
	// inserted), while the load goes on.
	drain := waitFor(t, 2*outage, 250*time.Millisecond, "the log buffer drains what piled up while ClickHouse was down", func() bool {
		oldest, err := rdb.XRangeN(ctx, spool, "-", "+", 1).Result()
		require.NoError(t, err)
		if len(oldest) == 0 {
			return true
		}
		ms, err := strconv.ParseInt(strings.SplitN(oldest[0].ID, "-", 2)[0], 10, 64)
		require.NoError(t, err)
		return ms >= restarted.UnixMilli()
	})
	time.Sleep(5 * time.Second)
	l.halt()
	acked, failed, failures := l.snapshot()
	require.Zero(t, failed, "sends failed while ClickHouse was down or after: %v", failures)
	t.Logf("ClickHouse down %s: %d events acknowledged, %d of them before the restart; buffer peak %d entries; drained %s after the restart",
		restarted.Sub(stopped).Round(time.Second), len(acked), len(during), peak, drain.Round(time.Millisecond))

	waitFor(t, 2*time.Minute, time.Second, "every acknowledged event ends success in the log", func() bool {
		return c.count(query("fullName", "events.Work", "status", "success")) >= int64(len(acked))
	})

	// Row by row, in ClickHouse itself: every acknowledged node has its rows — queued once, then
	// for each attempt running and its end (done for the last; an attempt another host took over
	// ends interrupted) — each exactly once: one row id per (node, attempt, stage). A batch
	// inserted twice leaves copies of one id, which the ReplacingMergeTree folds and every query
	// dedupes: counted, not an error.
	opts, err := clickhouse.ParseDSN(c.ch)
	require.NoError(t, err)
	conn, err := clickhouse.Open(opts)
	require.NoError(t, err)
	defer conn.Close()
	rows, err := conn.Query(ctx, `SELECT node_id, attempt, stage, count() AS copies, uniqExact(id) AS ids FROM exec_log
		WHERE full_name = 'events.Work' GROUP BY node_id, attempt, stage`)
	require.NoError(t, err)
	type counts struct{ copies, ids uint64 }
	byNode := map[string]map[string]counts{} // node → "attempt/stage" → counts
	last := map[string]uint32{}
	for rows.Next() {
		var node, stage string
		var attempt uint32
		var k counts
		require.NoError(t, rows.Scan(&node, &attempt, &stage, &k.copies, &k.ids))
		if byNode[node] == nil {
			byNode[node] = map[string]counts{}
		}
		byNode[node][fmt.Sprintf("%d/%s", attempt, stage)] = k
		last[node] = max(last[node], attempt)
	}
	require.NoError(t, rows.Err())
	lost, duplicated, redelivered, copies := 0, 0, 0, uint64(0)
	for _, a := range acked {
		node := a.nodes["events.Work"]
		stages := byNode[node]
		want := []string{"1/queued"}
		for at := uint32(1); at < last[node]; at++ {
			want = append(want, fmt.Sprintf("%d/running", at), fmt.Sprintf("%d/interrupted", at))
		}
		want = append(want, fmt.Sprintf("%d/running", last[node]), fmt.Sprintf("%d/done", last[node]))
		if last[node] > 1 {
			redelivered++
		}
		for _, w := range want {
			k := stages[w]
			switch {
			case k.ids == 0 && !strings.HasSuffix(w, "/running"):
				// An interrupted attempt may have ended before its run began: no running row.
				lost++
				if lost <= 10 {
					t.Errorf("event %d (node %s, sent %s): no %s row; rows: %v", a.n, node, a.answeredAt.Format("15:04:05.000"), w, stages)
				}
			case k.ids > 1:
				duplicated++
				if duplicated <= 10 {
					t.Errorf("event %d (node %s): %d %s rows", a.n, node, k.ids, w)
				}
			}
			copies += k.copies - k.ids
		}
		if last[node] == 1 {
			require.Len(t, stages, 3, "event %d: rows %v", a.n, stages)
		}
	}
	require.Len(t, byNode, len(acked), "the log holds exactly the acknowledged events' nodes")
	require.Zero(t, lost, "rows lost")
	require.Zero(t, duplicated, "rows duplicated")

	figure(t, "outage", fmt.Sprintf("%s (stopped by scripts/services.sh until it answered again)", restarted.Sub(stopped).Round(100*time.Millisecond)))
	figure(t, "events checked", fmt.Sprintf("%d (%d rows; %d sent while ClickHouse was down or before)", len(acked), 3*len(acked), len(during)))
	figure(t, "rows lost", lost)
	figure(t, "rows duplicated", duplicated)
	figure(t, "events run again by another host (each attempt logged)", redelivered)
	figure(t, "copies of a row id inserted twice (folded by the ReplacingMergeTree)", copies)
	figure(t, "buffer peak", fmt.Sprintf("%d entries", peak))
	figure(t, "drained after the restart", fmt.Sprintf("%s (limit %s)", drain.Round(time.Millisecond), 2*outage))
}
