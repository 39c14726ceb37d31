package redisbus

import (
	"context"
	"net"
	"sync"

	"github.com/redis/go-redis/v9"
)

// commandCounter counts the commands the bus sends, by name, pipelined ones one by one as
// Redis counts them: the benchmarks report Redis commands per message from it.
type commandCounter struct {
	mu     sync.Mutex
	counts map[string]int64
}

var _ redis.Hook = (*commandCounter)(nil)

func (c *commandCounter) add(cmds ...redis.Cmder) {
	c.mu.Lock()
	if c.counts == nil {
		c.counts = map[string]int64{}
	}
	for _, cmd := range cmds {
		c.counts[cmd.Name()]++
	}
	c.mu.Unlock()
}

// snapshot returns the counts so far.
func (c *commandCounter) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.add(cmd)
		return next(ctx, cmd)
	}
}

func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.add(cmds...)
		return next(ctx, cmds)
	}
}
