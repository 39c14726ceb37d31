package redisbus

import (
	"context"
	"slices"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// touchScript re-claims, for the consumer, those of the given entries it still owns (XCLAIM to
// itself, JUSTID), which resets their idle time — the heartbeat that keeps an alive consumer's
// messages from being claimed — and optionally sets their idle time (IDLE: release to the
// group) or delivery counter (RETRYCOUNT: a nack counts as a delivery). Checking the owner
// first keeps a consumer that was too slow from taking back what another member claimed: one
// XPENDING over the range of the ids, filtered by consumer, or, should that range hold more of
// the consumer's entries than it returned, one XPENDING per id. It returns the ids it touched.
//
// KEYS[1] stream; ARGV group, consumer, retrycount (-1: leave), idle ms (-1: now), ids in
// ascending order...
var touchScript = redis.NewScript(`
local key, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local retry, idle = tonumber(ARGV[3]), tonumber(ARGV[4])
local n = #ARGV - 4
local mine = {}
local limit = n + 1000
local p = redis.call('XPENDING', key, group, ARGV[5], ARGV[#ARGV], limit, consumer)
if #p < limit then
  local owned = {}
  for _, e in ipairs(p) do owned[e[1]] = true end
  for i = 5, #ARGV do
    if owned[ARGV[i]] then mine[#mine + 1] = ARGV[i] end
  end
else
  for i = 5, #ARGV do
    local q = redis.call('XPENDING', key, group, ARGV[i], ARGV[i], 1)
    if q[1] and q[1][2] == consumer then mine[#mine + 1] = ARGV[i] end
  end
end
if #mine > 0 then
  local args = {'XCLAIM', key, group, consumer, 0}
  for _, id in ipairs(mine) do args[#args + 1] = id end
  if idle >= 0 then args[#args + 1] = 'IDLE'; args[#args + 1] = idle end
  if retry >= 0 then args[#args + 1] = 'RETRYCOUNT'; args[#args + 1] = retry end
  args[#args + 1] = 'JUSTID'
  redis.call(unpack(args))
end
return mine
`)

// touchChunk bounds the ids of one script call (Lua's unpack has a stack limit).
const touchChunk = 1000

// touch runs touchScript over ids in chunks and returns the ids touched.
func (b *Bus) touch(ctx context.Context, key, group, consumer string, retry, idleMs int64, ids []string) ([]string, error) {
	var out []string
	for _, argv := range touchArgs(group, consumer, retry, idleMs, ids) {
		res, err := touchScript.Run(ctx, b.rdb, []string{key}, argv...).StringSlice()
		if err != nil && err != redis.Nil {
			return out, err
		}
		out = append(out, res...)
	}
	return out, nil
}

// touchReq is the entries of one consumer of one group to touch.
type touchReq struct {
	key, group, consumer string
	ids                  []string
}

// touchMany runs touchScript for many consumers' entries in one pipeline (the maintainer's
// heartbeats). A server that does not know the script yet (EVALSHA's NOSCRIPT: a restart, a
// failover) gets it with one EVAL per call that failed so.
func (b *Bus) touchMany(ctx context.Context, reqs []touchReq, retry, idleMs int64) {
	type call struct {
		key  string
		argv []any
		cmd  *redis.Cmd
	}
	var calls []call
	pipe := b.rdb.Pipeline()
	for _, r := range reqs {
		for _, argv := range touchArgs(r.group, r.consumer, retry, idleMs, r.ids) {
			calls = append(calls, call{key: r.key, argv: argv, cmd: pipe.EvalSha(ctx, touchScript.Hash(), []string{r.key}, argv...)})
		}
	}
	_, _ = pipe.Exec(ctx)
	for _, c := range calls {
		if err := c.cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			_ = touchScript.Run(ctx, b.rdb, []string{c.key}, c.argv...).Err()
		}
	}
}

// touchArgs are the ARGV of touchScript calls for ids, sorted, in chunks of touchChunk.
func touchArgs(group, consumer string, retry, idleMs int64, ids []string) [][]any {
	ids = slices.Clone(ids)
	slices.SortFunc(ids, func(a, b string) int {
		switch {
		case lessID(a, b):
			return -1
		case lessID(b, a):
			return 1
		}
		return 0
	})
	var out [][]any
	for len(ids) > 0 {
		n := min(len(ids), touchChunk)
		argv := make([]any, 0, 4+n)
		argv = append(argv, group, consumer, strconv.FormatInt(retry, 10), strconv.FormatInt(idleMs, 10))
		for _, id := range ids[:n] {
			argv = append(argv, id)
		}
		out = append(out, argv)
		ids = ids[n:]
	}
	return out
}

// dropConsumerScript deletes the consumer from the group when it holds no pending entry, so
// Lag counts only consumers that run or hold messages. (XGROUP DELCONSUMER would drop pending
// entries with it.)
//
// KEYS[1] stream; ARGV group, consumer.
var dropConsumerScript = redis.NewScript(`
local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #p == 0 then
  return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return -1
`)
