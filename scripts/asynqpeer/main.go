// Command asynqpeer measures asynq, a plain Go task queue on Redis, beside `trellis bench events`
// in the same run and on the same Redis, and prints the ratio (issue 13: the peer run anyone can
// repeat). It is a module of its own so asynq never becomes a dependency of Trellis.
//
//	cd scripts/asynqpeer && go run . --redis redis://127.0.0.1:6379/0 --trellis ../../bin/trellis -- --clickhouse clickhouse://127.0.0.1:9000/default
//
// The asynq phase: Tasks no-op tasks enqueued by Producers goroutines, handled by one server of
// Concurrency workers in this process; the time runs from the first enqueue to the last task
// handled. Then it runs `trellis bench events --json --redis URL --events Tasks` with the
// arguments after "--" and prints both figures and the ratio. asynq's keys live under its own
// prefix ("asynq:"), flushed of this run's queue before and after.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

func main() {
	redisURL := flag.String("redis", "redis://127.0.0.1:6379/0", "Redis for both systems")
	tasks := flag.Int("tasks", 50000, "tasks (and events) each system handles")
	producers := flag.Int("producers", 20, "asynq: concurrent enqueuers")
	concurrency := flag.Int("concurrency", 100, "asynq: server workers")
	trellis := flag.String("trellis", "", "path of the trellis binary; empty runs the asynq phase only")
	flag.Parse()

	opt, err := redis.ParseURL(*redisURL)
	if err != nil {
		fail("--redis: %v", err)
	}
	peer, err := runAsynq(opt, *tasks, *producers, *concurrency)
	if err != nil {
		fail("asynq phase: %v", err)
	}
	fmt.Printf("asynq %s: %d no-op tasks, %d producers, concurrency %d: %.0f tasks/s (%s)\n",
		asynqVersion, *tasks, *producers, *concurrency, peer, "end to end")
	if *trellis == "" {
		return
	}
	args := append([]string{"bench", "events", "--json", "--redis", *redisURL, "--events", fmt.Sprint(*tasks)}, flag.Args()...)
	cmd := exec.Command(*trellis, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		fail("%s %v: %v", *trellis, args, err)
	}
	var rep struct {
		Sandbox      string
		EventsPerSec float64
		CommandsPer  float64
		P50, P99     time.Duration
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		fail("read trellis bench's JSON: %v\n%s", err, out)
	}
	fmt.Printf("trellis (%s sandbox): %.0f events/s, %.2f Redis commands/event, at the offered rate p50 %s p99 %s\n",
		rep.Sandbox, rep.EventsPerSec, rep.CommandsPer, rep.P50, rep.P99)
	fmt.Printf("ratio trellis/asynq: %.2f×\n", rep.EventsPerSec/peer)
}

const asynqVersion = "v0.26.0"

// runAsynq enqueues n no-op tasks from p producers and handles them with a server of c workers,
// and returns tasks per second from the first enqueue to the last task handled.
func runAsynq(opt *redis.Options, n, p, c int) (float64, error) {
	ro := asynq.RedisClientOpt{Addr: opt.Addr, Password: opt.Password, DB: opt.DB}
	queue := fmt.Sprintf("peer%d", time.Now().UnixNano())
	insp := asynq.NewInspector(ro)
	defer insp.Close()
	defer func() { _ = insp.DeleteQueue(queue, true) }()

	var handled atomic.Int64
	done := make(chan struct{})
	srv := asynq.NewServer(ro, asynq.Config{Concurrency: c, Queues: map[string]int{queue: 1}, LogLevel: asynq.WarnLevel})
	mux := asynq.NewServeMux()
	mux.HandleFunc("noop", func(context.Context, *asynq.Task) error {
		if handled.Add(1) == int64(n) {
			close(done)
		}
		return nil
	})
	if err := srv.Start(mux); err != nil {
		return 0, err
	}
	defer srv.Shutdown()

	client := asynq.NewClient(ro)
	defer client.Close()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, p)
	for range p {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				if _, err := client.Enqueue(asynq.NewTask("noop", []byte(fmt.Sprint(i))), asynq.Queue(queue), asynq.MaxRetry(0)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		return 0, err
	default:
	}
	select {
	case <-done:
	case <-time.After(10 * time.Minute):
		return 0, fmt.Errorf("only %d of %d tasks handled after 10 minutes", handled.Load(), n)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "asynqpeer: "+format+"\n", args...)
	os.Exit(1)
}
