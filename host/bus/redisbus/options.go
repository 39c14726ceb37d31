package redisbus

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Options configure the Redis bus. Only the address (URL or Redis) is required.
type Options struct {
	// URL is the Redis URL (redis://[user:password@]host:port/db, rediss:// for TLS); used when
	// Redis is nil.
	URL string
	// Redis are go-redis client options, for what a URL cannot say. The bus copies them and sets
	// its own timeouts, retries and pool sizes where they are zero.
	Redis *redis.Options
	// Prefix starts every stream key [trellis:bus:]. Hosts of one cluster use the same one.
	Prefix string
	// Block is how long one XREADGROUP waits for new entries [2s]. Close ends a wait at once.
	Block time.Duration
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
	case o.URL == "" && o.Redis == nil:
		return fmt.Errorf("%w: neither URL nor Redis is set; pass the Redis URL (redis://host:6379/0)", ErrInvalidOptions)
	case o.Block < 10*time.Millisecond:
		return fmt.Errorf("%w: Block %s is below 10ms", ErrInvalidOptions, o.Block)
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

// clientOptions returns the options of the command client and of the readers' client.
func (o Options) clientOptions() (cmd, read *redis.Options, err error) {
	var base redis.Options
	if o.Redis != nil {
		base = *o.Redis
	} else {
		p, err := redis.ParseURL(o.URL)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: URL %q: %v", ErrInvalidOptions, o.URL, err)
		}
		base = *p
	}
	if base.DialTimeout == 0 {
		base.DialTimeout = 2 * time.Second
	}
	if base.DialerRetries == 0 {
		// go-redis dials up to 5 times 100ms apart by default: with Redis down, every command
		// would take half a second to fail.
		base.DialerRetries = 1
	}
	if base.ReadTimeout == 0 {
		base.ReadTimeout = o.OpTimeout
	}
	if base.WriteTimeout == 0 {
		base.WriteTimeout = o.OpTimeout
	}
	if base.MaxRetries == 0 {
		base.MaxRetries = 2
	}
	if base.MaintNotificationsConfig == nil {
		// Redis 7 has no maintenance notifications; go-redis's "auto" mode would try the
		// handshake on every connection and then rewrite its options, which races between the
		// sticky connections of the subscriptions.
		base.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	}
	if base.ClientName == "" {
		base.ClientName = "trellis-bus"
	}
	cmdOpts := base
	cmdOpts.ContextTimeoutEnabled = true
	readOpts := base
	// One connection per subscription, held while it blocks in XREADGROUP: a pool of its own,
	// so subscriptions never starve Publish of connections. Errors are the reader's to handle.
	readOpts.PoolSize = 100000
	readOpts.MinIdleConns = 0
	readOpts.MaxRetries = -1
	return &cmdOpts, &readOpts, nil
}
