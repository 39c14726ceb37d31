package bustest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellis-run/trellis/host/bus"
)

// Load is the shape of a throughput benchmark: publishers sending one message per Publish call
// (as sendEvent does) to one topic, consumed by the members of one group that ack each message
// as it arrives.
type Load struct {
	Publishers  int // concurrent publishing goroutines [16]
	Subscribers int // members of the group [1]
	Batch       int // messages per Publish call [1]
	Payload     int // payload bytes [200]
	Prefetch    int // per member [bus.DefaultPrefetch]
}

func (l Load) withDefaults() Load {
	if l.Publishers <= 0 {
		l.Publishers = 16
	}
	if l.Subscribers <= 0 {
		l.Subscribers = 1
	}
	if l.Batch <= 0 {
		l.Batch = 1
	}
	if l.Payload <= 0 {
		l.Payload = 200
	}
	return l
}

// RunLoad publishes b.N messages to topic under load l and waits until the group acked them
// all. It reports msgs/s and the publish-to-delivery latency (p50-ms, p99-ms, sampled) and
// returns the time from the first Publish to the last ack. started is called once the
// subscriptions run, right before the clock starts (to snapshot counters).
func RunLoad(b *testing.B, bs bus.Bus, topic string, l Load, started func()) time.Duration {
	b.Helper()
	l = l.withDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	n := int64(b.N)
	var acked atomic.Int64
	done := make(chan struct{})
	var latMu sync.Mutex
	var lats []time.Duration
	var wg sync.WaitGroup
	subs := make([]bus.Subscription, l.Subscribers)
	for i := range subs {
		sub, err := bs.Subscribe(ctx, topic, "bench", bus.SubscribeOptions{Consumer: fmt.Sprintf("c%d", i), Prefetch: l.Prefetch, Start: bus.StartNewest})
		if err != nil {
			b.Fatalf("subscribe: %v", err)
		}
		subs[i] = sub
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for d := range sub.Deliveries() {
				if err := d.Ack(ctx); err != nil {
					b.Errorf("ack: %v", err)
					return
				}
				if ts := d.Message().Headers["ts"]; ts != "" {
					if ns, err := strconv.ParseInt(ts, 10, 64); err == nil {
						mine = append(mine, time.Since(time.Unix(0, ns)))
					}
				}
				if acked.Add(1) == n {
					close(done)
				}
			}
			latMu.Lock()
			lats = append(lats, mine...)
			latMu.Unlock()
		}()
	}
	payload := make([]byte, l.Payload)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	if started != nil {
		started()
	}
	b.ResetTimer()
	start := time.Now()
	var next atomic.Int64
	var pub sync.WaitGroup
	for range l.Publishers {
		pub.Add(1)
		go func() {
			defer pub.Done()
			for {
				first := next.Add(int64(l.Batch)) - int64(l.Batch)
				if first >= n {
					return
				}
				k := min(int64(l.Batch), n-first)
				msgs := make([]*bus.Message, k)
				for j := range msgs {
					h := map[string]string{"n": strconv.FormatInt(first+int64(j), 10)}
					if (first+int64(j))%16 == 0 {
						h["ts"] = strconv.FormatInt(time.Now().UnixNano(), 10)
					}
					msgs[j] = &bus.Message{Payload: payload, Headers: h}
				}
				if _, err := bs.Publish(ctx, topic, msgs...); err != nil {
					b.Errorf("publish: %v", err)
					return
				}
			}
		}()
	}
	pub.Wait()
	select {
	case <-done:
	case <-ctx.Done():
		b.Fatalf("only %d of %d messages acked", acked.Load(), n)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	for _, s := range subs {
		_ = s.Close()
	}
	wg.Wait()
	b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
	if len(lats) > 0 {
		slices.Sort(lats)
		b.ReportMetric(float64(lats[len(lats)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds())/1000, "p99-ms")
	}
	return elapsed
}
