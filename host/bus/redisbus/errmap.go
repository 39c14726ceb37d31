package redisbus

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/host/rediserr"
)

// unavailable says whether err means Redis cannot serve now: the caller may retry.
func unavailable(err error) bool { return rediserr.Unavailable(err) }

func isNoGroup(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.Contains(rerr.Error(), "NOGROUP")
}

// isStreamGone: a blocking read ended because one of its streams was deleted (Redis 7's
// "UNBLOCKED the stream key no longer exists"); the reader treats it as a lost group.
func isStreamGone(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "UNBLOCKED") && strings.Contains(rerr.Error(), "no longer exists")
}

func isNoSuchKey(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	msg := rerr.Error()
	return strings.Contains(msg, "no such key") || strings.Contains(msg, "requires the key to exist")
}

// wrap turns a go-redis error into the bus contract's: the caller's own context errors as they
// are, bus.ErrClosed once the bus is closed, bus.ErrUnavailable when Redis cannot serve.
func (b *Bus) wrap(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%s: %w", op, cerr)
	}
	if b.isClosed() {
		return fmt.Errorf("%s: %w", op, bus.ErrClosed)
	}
	if unavailable(err) {
		return fmt.Errorf("%s: %w: %w (is Redis at %s running?)", op, bus.ErrUnavailable, err, b.addr)
	}
	return fmt.Errorf("%s: %w", op, err)
}
