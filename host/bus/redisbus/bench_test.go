package redisbus

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/bus/bustest"
)

// The benchmarks run on a private redis-server (AOF on, fsync every second: the usual durable
// setting), so other suites' traffic neither slows them nor pollutes INFO commandstats, and
// compare with what redis-benchmark reaches on the same server for pipelined XADD.
//
//	go test -run '^$' -bench EndToEnd -benchtime 200000x ./host/bus/redisbus/

var (
	benchOnce sync.Once
	benchSrv  *server
	baseline  float64
	baseErr   error
)

func benchServer(b *testing.B) *server {
	b.Helper()
	benchOnce.Do(func() {
		benchSrv = newServer(b, "--appendonly", "yes", "--appendfsync", "everysec", "--save", "")
		baseline, baseErr = redisBenchmarkXAdd(benchSrv.Port)
	})
	if benchSrv == nil {
		b.Fatal("no benchmark server")
	}
	return benchSrv
}

var rpsRE = regexp.MustCompile(`([0-9.]+) requests per second`)

// redisBenchmarkXAdd runs redis-benchmark's pipelined XADD (16 commands per round trip, 50
// connections) and returns its rate.
func redisBenchmarkXAdd(port int) (float64, error) {
	key := "bench:x:" + runID
	out, err := exec.Command("redis-benchmark", "-h", "127.0.0.1", "-p", strconv.Itoa(port),
		"-q", "-n", "200000", "-P", "16", "XADD", key, "*", "f", "v").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("redis-benchmark: %v: %s", err, out)
	}
	// -q prints progress with carriage returns, then the result.
	lines := strings.Split(strings.ReplaceAll(string(out), "\r", "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if m := rpsRE.FindStringSubmatch(lines[i]); m != nil {
			rps, err := strconv.ParseFloat(m[1], 64)
			if err == nil {
				_ = exec.Command("redis-cli", "-p", strconv.Itoa(port), "DEL", key).Run()
			}
			return rps, err
		}
	}
	return 0, fmt.Errorf("redis-benchmark: no rate in %q", out)
}

// serverCalls sums the calls of every command in INFO commandstats (script-internal calls
// included, as Redis counts them).
func serverCalls(b *testing.B, url string) int64 {
	b.Helper()
	info, err := client(b, url).Info(context.Background(), "commandstats").Result()
	require.NoError(b, err)
	var total int64
	for _, line := range strings.Split(info, "\n") {
		if !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		_, rest, _ := strings.Cut(line, "calls=")
		n, _ := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
		total += n
	}
	return total
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// BenchmarkEndToEnd: 16 or 64 publishers, one message per Publish, one group of 1 or 4 members acking
// each message; msgs/s from the first Publish to the last ack, Redis commands per message as the
// bus sent them (cmds/msg) and as Redis counted them (server-cmds/msg, with each command inside
// a Lua script and the INFO calls of the benchmark), and the rate as a fraction of
// redis-benchmark's pipelined XADD on the same server.
func BenchmarkEndToEnd(b *testing.B) {
	for _, c := range []struct{ pubs, subs int }{{16, 1}, {16, 4}, {64, 1}, {64, 4}} {
		b.Run(fmt.Sprintf("pubs=%d/subs=%d", c.pubs, c.subs), func(b *testing.B) {
			srv := benchServer(b)
			url := srv.URL()
			opts := Options{URL: url, Prefix: fmt.Sprintf("bench:%s:%d:", runID, time.Now().UnixNano())}
			bs, err := New(opts)
			require.NoError(b, err)
			defer bs.Close()
			var before map[string]int64
			var serverBefore int64
			elapsed := bustest.RunLoad(b, bs, "events", bustest.Load{Publishers: c.pubs, Subscribers: c.subs}, func() {
				before = bs.counter.snapshot()
				serverBefore = serverCalls(b, url)
			})
			require.NoError(b, bs.flushAcks(context.Background()))
			after := bs.counter.snapshot()
			serverAfter := serverCalls(b, url)
			n := float64(b.N)
			for k, v := range before {
				after[k] -= v
			}
			b.ReportMetric(float64(sum(after))/n, "cmds/msg")
			b.ReportMetric(float64(serverAfter-serverBefore)/n, "server-cmds/msg")
			if baseErr != nil {
				b.Logf("no baseline: %v", baseErr)
			} else if baseline > 0 {
				b.ReportMetric(baseline, "xadd-P16/s")
				b.ReportMetric(n/elapsed.Seconds()/baseline, "of-xadd-P16")
			}
			if b.N >= 10000 {
				b.Logf("%d messages in %s; commands by name: %v", b.N, elapsed.Round(time.Millisecond), after)
			}
			_ = client(b, url).FlushAll(context.Background()).Err()
		})
	}
}
