package redislock

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// maxBatch bounds one pipeline, so one slow flush cannot hold thousands of callers.
const maxBatch = 512

// maxFlushers is how many pipelines may be in flight at once: while Redis executes one, the
// client encodes the next and decodes the last.
const maxFlushers = 4

// batcher sends the commands of concurrent callers in shared pipelines. A flush goroutine runs
// only while commands are queued: an idle Coordinator owns no goroutine and needs no Close.
type batcher struct {
	client redis.UniversalClient

	mu       sync.Mutex
	queue    []*call
	flushers int
}

// call is one caller's command: add queues it on a pipeline and returns its result holder.
type call struct {
	add  func(ctx context.Context, p redis.Pipeliner) redis.Cmder
	cmd  redis.Cmder
	done chan struct{}
}

// do queues add and waits for its command's result (or for ctx). A command whose caller gave up
// may still reach Redis.
func (b *batcher) do(ctx context.Context, add func(ctx context.Context, p redis.Pipeliner) redis.Cmder) (redis.Cmder, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := &call{add: add, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, c)
	// One flusher per maxBatch queued commands, up to maxFlushers.
	if b.flushers < maxFlushers && (b.flushers == 0 || len(b.queue) > b.flushers*maxBatch) {
		b.flushers++
		go b.flush()
	}
	b.mu.Unlock()
	select {
	case <-c.done:
		return c.cmd, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// flush sends queued commands, one pipeline per round trip, until the queue is empty.
func (b *batcher) flush() {
	ctx := context.Background() // callers wait on their own contexts; go-redis timeouts bound this
	for {
		b.mu.Lock()
		n := min(len(b.queue), maxBatch)
		if n == 0 {
			b.flushers--
			b.mu.Unlock()
			return
		}
		batch := b.queue[:n:n]
		b.queue = b.queue[n:]
		if len(b.queue) == 0 {
			b.queue = nil
		}
		b.mu.Unlock()

		pipe := b.client.Pipeline()
		for _, c := range batch {
			c.cmd = c.add(ctx, pipe)
		}
		_, _ = pipe.Exec(ctx) // each command carries its own error
		for _, c := range batch {
			close(c.done)
		}
	}
}
