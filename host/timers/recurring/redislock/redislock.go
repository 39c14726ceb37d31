package redislock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/trellis-run/trellis/host/timers/recurring"
)

// DefaultPrefix is the key prefix New uses when given "".
const DefaultPrefix = "trellis:recurring:"

// claimTTL is how long a tick's claim key lives: far longer than the clock skew between hosts
// and the lateness of any timer, far shorter than forever.
const claimTTL = 24 * time.Hour

// Coordinator is the recurring.Coordinator on Redis. It is safe for concurrent use by many
// Schedulers; Coordinators of several hosts with the same prefix on the same Redis form one
// cluster.
type Coordinator struct {
	client redis.UniversalClient
	prefix string
	b      *batcher
}

var _ recurring.Coordinator = (*Coordinator)(nil)

// New returns a Coordinator using client (which the caller keeps and closes) and keys under
// prefix ("" = DefaultPrefix). Hosts of one cluster must use the same prefix.
func New(client redis.UniversalClient, prefix string) *Coordinator {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Coordinator{client: client, prefix: prefix, b: newBatcher(client)}
}

// claimScript makes one or more claims: for each pair of keys (tick claim, last tick) and time,
// it sets the claim key if absent and, if it did, raises the last-tick key; it returns 1 for
// each claim won, 0 for each lost. ARGV[1] is the claim keys' ttl in seconds. Times are 20-digit
// zero-padded nanoseconds, so string order is time order (Lua numbers are doubles and would
// round them).
var claimScript = redis.NewScript(`
local out = {}
for i = 1, #KEYS / 2 do
  local at = ARGV[i + 1]
  if redis.call('SET', KEYS[2*i-1], '1', 'NX', 'EX', ARGV[1]) then
    local cur = redis.call('GET', KEYS[2*i])
    if (not cur) or cur < at then redis.call('SET', KEYS[2*i], at) end
    out[i] = 1
  else
    out[i] = 0
  end
end
return out`)

var errShortReply = errors.New("redislock: the claim script answered fewer results than claims; is another program's script loaded under its hash?")

// renewScript extends the run lock only while the caller still holds it.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`)

// releaseScript deletes the run lock only if the caller still holds it.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

func (c *Coordinator) key(template, suffix string) string {
	return c.prefix + "{" + template + "}:" + suffix
}

func checkTemplate(op, template string) error {
	if template == "" {
		return fmt.Errorf("redislock: %s: %w: template name is empty; pass the template's fullName", op, recurring.ErrInvalidArgument)
	}
	return nil
}

func checkAt(op string, at time.Time) error {
	if at.Before(time.Unix(0, 0)) {
		return fmt.Errorf("redislock: %s: %w: tick time %s is zero or before 1970; pass the tick's scheduled time", op, recurring.ErrInvalidArgument, at)
	}
	return nil
}

// encodeAt writes at as 20 zero-padded digits of unix nanoseconds (at is after 1970).
func encodeAt(at time.Time) string {
	var buf [20]byte
	digits := strconv.AppendInt(buf[:0:20], at.UnixNano(), 10)
	out := make([]byte, 20-len(digits), 20)
	for i := range out {
		out[i] = '0'
	}
	return string(append(out, digits...))
}

// ClaimTick implements recurring.Coordinator.
func (c *Coordinator) ClaimTick(ctx context.Context, template string, at time.Time) (bool, error) {
	if err := errors.Join(checkTemplate("claim tick", template), checkAt("claim tick", at)); err != nil {
		return false, err
	}
	cl := &call{claim: &claimArgs{
		tickKey: c.key(template, "tick:"+strconv.FormatInt(at.UnixNano(), 10)),
		lastKey: c.key(template, "last"),
		at:      encodeAt(at),
	}}
	err := c.b.do(ctx, cl)
	if err == nil {
		err = cl.err
	}
	if err != nil {
		return false, fmt.Errorf("redislock: claim tick %s of %q: %w", at, template, err)
	}
	return cl.won, nil
}

// LastTick implements recurring.Coordinator.
func (c *Coordinator) LastTick(ctx context.Context, template string) (time.Time, bool, error) {
	if err := checkTemplate("last tick", template); err != nil {
		return time.Time{}, false, err
	}
	cl := &call{add: func(ctx context.Context, p redis.Pipeliner) redis.Cmder {
		return p.Get(ctx, c.key(template, "last"))
	}}
	if err := c.b.do(ctx, cl); err != nil {
		return time.Time{}, false, fmt.Errorf("redislock: last tick of %q: %w", template, err)
	}
	s, err := cl.cmd.(*redis.StringCmd).Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("redislock: last tick of %q: %w", template, err)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("redislock: last tick of %q: key %s holds %q, not a time; delete the key: %w", template, c.key(template, "last"), s, err)
	}
	return time.Unix(0, n).UTC(), true, nil
}

// AcquireRun implements recurring.Coordinator.
func (c *Coordinator) AcquireRun(ctx context.Context, template string, ttl time.Duration) (func(), bool, error) {
	if err := checkTemplate("acquire run lock", template); err != nil {
		return nil, false, err
	}
	if ttl < time.Millisecond {
		return nil, false, fmt.Errorf("redislock: acquire run lock: %w: ttl %s; use at least 1ms (the scheduler uses 30s)", recurring.ErrInvalidArgument, ttl)
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	token := hex.EncodeToString(raw[:])
	key := c.key(template, "run")
	cl := &call{add: func(ctx context.Context, p redis.Pipeliner) redis.Cmder {
		return p.SetNX(ctx, key, token, ttl)
	}}
	if err := c.b.do(ctx, cl); err != nil {
		return nil, false, fmt.Errorf("redislock: acquire run lock of %q: %w", template, err)
	}
	ok, err := cl.cmd.(*redis.BoolCmd).Result()
	if err != nil {
		return nil, false, fmt.Errorf("redislock: acquire run lock of %q: %w", template, err)
	}
	if !ok {
		return nil, false, nil
	}
	l := &lease{c: c, key: key, token: token, ttl: ttl, stop: make(chan struct{}), done: make(chan struct{})}
	go l.renew()
	return l.release, true, nil
}

// lease keeps one held run lock alive until released.
type lease struct {
	c          *Coordinator
	key, token string
	ttl        time.Duration
	stop, done chan struct{}
	once       sync.Once
}

// renew extends the lock every ttl/3 until release, or until the lock turns out to be lost
// (this host was paused past its ttl and another took it): then there is nothing to keep.
func (l *lease) renew() {
	defer close(l.done)
	t := time.NewTicker(max(l.ttl/3, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.ttl)
		n, err := l.c.eval(ctx, renewScript, []string{l.key}, l.token, l.ttl.Milliseconds()).Int()
		cancel()
		if err == nil && n == 0 {
			return
		}
	}
}

// release stops renewing and deletes the lock if this lease still holds it.
func (l *lease) release() {
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// On failure the lock lapses after its ttl; nothing better can be done here.
		_ = l.c.eval(ctx, releaseScript, []string{l.key}, l.token).Err()
	})
}

// eval runs a script through the batcher with EVALSHA, loading it on the rare NOSCRIPT (first
// use on a server, or after SCRIPT FLUSH or a restart).
func (c *Coordinator) eval(ctx context.Context, s *redis.Script, keys []string, args ...any) *redis.Cmd {
	cl := &call{add: func(ctx context.Context, p redis.Pipeliner) redis.Cmder {
		return s.EvalSha(ctx, p, keys, args...)
	}}
	if err := c.b.do(ctx, cl); err != nil {
		out := redis.NewCmd(ctx)
		out.SetErr(err)
		return out
	}
	res := cl.cmd.(*redis.Cmd)
	if e := res.Err(); e != nil && redis.HasErrorPrefix(e, "NOSCRIPT") {
		return s.Run(ctx, c.client, keys, args...)
	}
	return res
}
