package redislock

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

const (
	// maxBatch bounds one pipeline, so one slow flush cannot hold thousands of callers.
	maxBatch = 512
	// maxFlushers is how many pipelines may be in flight at once: while Redis executes one, the
	// client encodes the next and decodes the last.
	maxFlushers = 4
	// claimsPerScript is how many claims one script call makes when the client is a single
	// server (a cluster spreads templates over slots, so there each claim is a call of its
	// own). A script call costs Redis about 8µs however little it does; 64 claims in one cost
	// about as much as 3 alone.
	claimsPerScript = 64
)

// batcher sends the commands of concurrent callers in shared pipelines. Flush goroutines run
// only while commands are queued: an idle Coordinator owns no goroutine and needs no Close.
type batcher struct {
	client redis.UniversalClient
	// multiKey says one script call may touch keys of different templates.
	multiKey bool

	mu       sync.Mutex
	queue    []*call
	flushers int
}

func newBatcher(client redis.UniversalClient) *batcher {
	_, single := client.(*redis.Client)
	return &batcher{client: client, multiKey: single}
}

// call is one caller's command: either add, which queues a command on a pipeline, or a claim,
// which the flusher packs with other claims into script calls.
type call struct {
	add   func(ctx context.Context, p redis.Pipeliner) redis.Cmder
	claim *claimArgs

	cmd  redis.Cmder // add's result
	won  bool        // claim's result
	err  error       // claim's error
	done chan struct{}
}

// claimArgs are one claim's keys (tick key, last-tick key) and padded time.
type claimArgs struct {
	tickKey, lastKey, at string
}

// do queues c and waits for its result (or for ctx). A command whose caller gave up may still
// reach Redis.
func (b *batcher) do(ctx context.Context, c *call) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.done = make(chan struct{})
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
		return nil
	case <-ctx.Done():
		return ctx.Err()
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
		b.send(ctx, batch)
		for _, c := range batch {
			close(c.done)
		}
	}
}

// claimGroup is one script call and the claims it makes.
type claimGroup struct {
	calls []*call
	cmd   *redis.Cmd
}

func (b *batcher) send(ctx context.Context, batch []*call) {
	per := 1
	if b.multiKey {
		per = claimsPerScript
	}
	pipe := b.client.Pipeline()
	var groups []*claimGroup
	var cur *claimGroup
	for _, c := range batch {
		if c.claim == nil {
			c.cmd = c.add(ctx, pipe)
			continue
		}
		if cur == nil || len(cur.calls) == per {
			cur = &claimGroup{}
			groups = append(groups, cur)
		}
		cur.calls = append(cur.calls, c)
	}
	for _, g := range groups {
		g.cmd = claimScript.EvalSha(ctx, pipe, g.keys(), g.args()...)
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	for _, g := range groups {
		res, err := g.cmd.Int64Slice()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			// First use on this server, or after SCRIPT FLUSH or a restart: load and retry.
			res, err = claimScript.Run(ctx, b.client, g.keys(), g.args()...).Int64Slice()
		}
		for i, c := range g.calls {
			switch {
			case err != nil:
				c.err = err
			case len(res) != len(g.calls):
				c.err = errShortReply
			default:
				c.won = res[i] == 1
			}
		}
	}
}

func (g *claimGroup) keys() []string {
	keys := make([]string, 0, 2*len(g.calls))
	for _, c := range g.calls {
		keys = append(keys, c.claim.tickKey, c.claim.lastKey)
	}
	return keys
}

func (g *claimGroup) args() []any {
	args := make([]any, 0, 1+len(g.calls))
	args = append(args, int(claimTTL.Seconds()))
	for _, c := range g.calls {
		args = append(args, c.claim.at)
	}
	return args
}
