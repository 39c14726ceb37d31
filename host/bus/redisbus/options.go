package redisbus

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/trellis-run/trellis/host/redisconn"
)

// Options configure the Redis bus. Only the address (URL, Redis or Conn) is required.
type Options struct {
	// URL is the Redis URL in any form redisconn.ParseURL reads: one server
	// (redis://[user:password@]host:port/db, rediss:// for TLS), a Redis Cluster
	// (redis+cluster://host:port,host:port,…) or a master through Sentinel
	// (redis+sentinel://host:port,…?master_name=NAME); used when Conn and Redis are nil.
	URL string
	// Redis are go-redis options of one server, for what a URL cannot say; used when Conn is nil.
	Redis *redis.Options
	// Conn are the options of any deployment (redisconn.ParseURL's result). The bus copies them
	// (Conn or Redis) and sets its own timeouts, retries and pool sizes where they are zero.
	Conn *redisconn.Options
	// Prefix starts every stream key [trellis:bus:]. Hosts of one cluster use the same one. On
	// a Redis Cluster the key is Prefix + "{" + topic + "}", so each topic has a slot of its own
	// and topics spread over the masters; the Prefix may then hold no '{' or '}'.
	Prefix string
	// Block is how long one XREADGROUP waits for new entries [2s]. Close ends a wait at once.
	Block time.Duration
	// ReadStreams caps the streams one XREADGROUP reads [256]. Subscriptions of one group and
	// consumer share a reader: one blocking XREADGROUP over all of their streams, on one
	// connection; past ReadStreams streams the bus opens another reader. (On a Redis Cluster a
	// read spans one slot only, so there subscriptions share a reader when their topics share
	// a slot.)
	ReadStreams int
	// HotStreams caps the streams of a hot reader [16]. Waking a read blocked on many streams,
	// and blocking it again, costs Redis work for every stream, so a subscription whose stream
	// brings entries moves to a hot reader of few streams, and back to the large ones after
	// HotFor without entries [30s].
	HotStreams int
	HotFor     time.Duration
	// ReadLinger is how long a subscription waits, after a read that brought fewer entries than
	// it had room for, before reading again, so that under load each XREADGROUP brings many
	// entries [1ms]. It adds at most that much latency while messages flow, none to the first
	// message after a quiet spell. Negative disables it.
	ReadLinger time.Duration
	// AckInterval is the longest an ack waits to be sent with others [2ms].
	AckInterval time.Duration
	// AckBatch is the number of queued acks that are sent at once, without waiting [256].
	AckBatch int
	// MaxPipeline caps the commands of one pipeline round trip [1024].
	MaxPipeline int
	// TrimInterval is how often the topics this bus used are trimmed [30s]; negative disables it.
	TrimInterval time.Duration
	// DefaultClaimAfter applies to subscriptions whose ClaimAfter is 0 [30s].
	DefaultClaimAfter time.Duration
	// OpTimeout bounds one command or pipeline round trip [5s].
	OpTimeout time.Duration
	// Logger receives what an operator should know: Redis going away and coming back, a group
	// recreated [slog.Default()].
	Logger *slog.Logger
}

// WithDefaults fills the zero fields with their defaults.
func (o Options) WithDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = "trellis:bus:"
	}
	if o.Block == 0 {
		o.Block = 2 * time.Second
	}
	if o.ReadStreams == 0 {
		o.ReadStreams = 256
	}
	if o.HotStreams == 0 {
		o.HotStreams = 16
	}
	if o.HotFor == 0 {
		o.HotFor = 30 * time.Second
	}
	if o.ReadLinger == 0 {
		o.ReadLinger = time.Millisecond
	}
	if o.AckInterval == 0 {
		o.AckInterval = 2 * time.Millisecond
	}
	if o.AckBatch == 0 {
		o.AckBatch = 256
	}
	if o.MaxPipeline == 0 {
		o.MaxPipeline = 1024
	}
	if o.TrimInterval == 0 {
		o.TrimInterval = 30 * time.Second
	}
	if o.DefaultClaimAfter == 0 {
		o.DefaultClaimAfter = 30 * time.Second
	}
	if o.OpTimeout == 0 {
		o.OpTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

func (o Options) validate() error {
	switch {
	case o.URL == "" && o.Redis == nil && o.Conn == nil:
		return fmt.Errorf("%w: none of URL, Redis and Conn is set; pass the Redis URL (redis://host:6379/0)", ErrInvalidOptions)
	case o.Block < 10*time.Millisecond:
		return fmt.Errorf("%w: Block %s is below 10ms", ErrInvalidOptions, o.Block)
	case o.ReadStreams < 1:
		return fmt.Errorf("%w: ReadStreams %d is below 1", ErrInvalidOptions, o.ReadStreams)
	case o.HotStreams < 1:
		return fmt.Errorf("%w: HotStreams %d is below 1", ErrInvalidOptions, o.HotStreams)
	case o.HotFor < 0:
		return fmt.Errorf("%w: HotFor %s is negative", ErrInvalidOptions, o.HotFor)
	case o.AckInterval < 0:
		return fmt.Errorf("%w: AckInterval %s is negative", ErrInvalidOptions, o.AckInterval)
	case o.AckBatch < 1:
		return fmt.Errorf("%w: AckBatch %d is below 1", ErrInvalidOptions, o.AckBatch)
	case o.MaxPipeline < 16:
		return fmt.Errorf("%w: MaxPipeline %d is below 16", ErrInvalidOptions, o.MaxPipeline)
	case o.DefaultClaimAfter < 0:
		return fmt.Errorf("%w: DefaultClaimAfter %s is negative", ErrInvalidOptions, o.DefaultClaimAfter)
	case o.OpTimeout < 10*time.Millisecond:
		return fmt.Errorf("%w: OpTimeout %s is below 10ms", ErrInvalidOptions, o.OpTimeout)
	}
	return nil
}

// clientOptions returns the options of the command client, of the readers' blocking
// connections and of their non-blocking reads.
func (o Options) clientOptions() (cmd, read, direct redisconn.Options, err error) {
	var base redisconn.Options
	switch {
	case o.Conn != nil:
		base = *o.Conn
	case o.Redis != nil:
		base = redisconn.Options{Single: o.Redis}
	default:
		base, err = redisconn.ParseURL(o.URL)
		if err != nil {
			return cmd, read, direct, fmt.Errorf("%w: URL: %w", ErrInvalidOptions, err)
		}
	}
	if base.Kind() == redisconn.Cluster && strings.ContainsAny(o.Prefix, "{}") {
		return cmd, read, direct, fmt.Errorf("%w: Prefix %q holds '{' or '}': on a Redis Cluster the bus tags each topic's key itself, and a brace in the prefix would put every topic in one slot",
			ErrInvalidOptions, o.Prefix)
	}
	base = base.Tune(func(c *redisconn.Common) {
		if c.DialTimeout == 0 {
			c.DialTimeout = 2 * time.Second
		}
		if c.DialerRetries == 0 {
			// go-redis dials up to 5 times 100ms apart by default: with Redis down, every command
			// would take half a second to fail.
			c.DialerRetries = 1
		}
		if c.ReadTimeout == 0 {
			c.ReadTimeout = o.OpTimeout
		}
		if c.WriteTimeout == 0 {
			c.WriteTimeout = o.OpTimeout
		}
		if c.MaxRetries == 0 {
			c.MaxRetries = 2
		}
		if c.ClientName == "" {
			c.ClientName = "trellis-bus"
		}
	})
	// (redisconn's clients leave go-redis's maintenance notifications off: Redis 7 has none,
	// and the "auto" mode would rewrite options on every new connection, racing between the
	// subscriptions' sticky connections.)
	cmd = base.Tune(func(c *redisconn.Common) { c.ContextTimeoutEnabled = true })
	// One connection per reader, held while it blocks in XREADGROUP: a pool of its own (per
	// node, on a cluster), so readers never starve Publish of connections. Errors are the
	// reader's to handle.
	read = base.Tune(func(c *redisconn.Common) {
		c.PoolSize = 100000
		c.MinIdleConns = 0
		c.MaxRetries = -1
		if c.ReadTimeout > 0 {
			c.ReadTimeout += o.Block // a blocking read's reply comes up to Block late
		}
	})
	// The readers' non-blocking reads (a subscription's pending entries, a backlog read as
	// credit comes back) share a few connections. Never retried: a read whose reply was lost
	// did deliver its entries, into the consumer's pending list, which the reader reads again.
	direct = base.Tune(func(c *redisconn.Common) {
		c.PoolSize = directConns
		c.MinIdleConns = 0
		c.MaxRetries = -1
		c.ContextTimeoutEnabled = true
	})
	return cmd, read, direct, nil
}

// directConns is the size of the pool of the readers' non-blocking reads (per node on a
// cluster): each read takes one for a round trip, so a few serve every reader.
const directConns = 4
