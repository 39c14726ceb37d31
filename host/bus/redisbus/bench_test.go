package redisbus

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/bus"
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

// BenchmarkOneOfMany: one message to one of N idle subscriptions of one group and consumer (a
// listener's queue among N on a host), published and then received and acked, one at a time a
// few milliseconds apart as sparse events come: how long Publish takes (pub-p50-us: sendEvent
// waits for it) and when the delivery arrives (p50-us, p90-us), which should not grow much with
// N although N streams share a blocking read (Redis then unblocks a read of ReadStreams keys).
// ReadLinger is off: one message at a time would otherwise wait it out on every read.
//
//	go test -run '^$' -bench OneOfMany -benchtime 2000x ./host/bus/redisbus/
func BenchmarkOneOfMany(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			srv := benchServer(b)
			bs, err := New(Options{URL: srv.URL(), Prefix: fmt.Sprintf("bench:%s:%d:", runID, time.Now().UnixNano()), ReadLinger: -1})
			require.NoError(b, err)
			ctx := context.Background()
			defer func() {
				_ = bs.Close()
				_ = client(b, srv.URL()).FlushAll(ctx).Err()
			}()
			subs := make([]*sub, n)
			for i := range subs {
				s, err := bs.Subscribe(ctx, fmt.Sprintf("q%d", i), "pool", bus.SubscribeOptions{Consumer: "host-1"})
				require.NoError(b, err)
				subs[i] = s.(*sub)
			}
			// Every stream waits in a blocking read, as on an idle host.
			require.Eventually(b, func() bool {
				for _, s := range subs {
					s.mu.Lock()
					shared := s.mode == modeShared
					s.mu.Unlock()
					if !shared {
						return false
					}
				}
				return true
			}, time.Minute, time.Millisecond)
			target := subs[n/2]
			msg := &bus.Message{Payload: []byte("x")}
			b.ResetTimer()
			var lat, pubs []time.Duration
			for range b.N {
				time.Sleep(3 * time.Millisecond)
				st := time.Now()
				if _, err := bs.Publish(ctx, target.topic, msg); err != nil {
					b.Fatal(err)
				}
				pubs = append(pubs, time.Since(st))
				d := <-target.Deliveries()
				lat = append(lat, time.Since(st))
				if err := d.Ack(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-us")
			b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds()), "p90-us")
			slices.Sort(pubs)
			b.ReportMetric(float64(pubs[len(pubs)/2].Microseconds()), "pub-p50-us")
		})
	}
}
