package host

import (
	"context"
	"errors"
	"fmt"
)

// part is one piece of a running host. Start brings the parts up in order and, when one fails,
// stops those already started in reverse; Stop stops them all in reverse. Each part is a pair of
// functions rather than an interface because most wrap a value of another package (the engine,
// the task center) and add only what the host knows: which backend it gets and what it depends on.
type part struct {
	name  string
	start func(ctx context.Context) error
	stop  func(ctx context.Context) error
}

// startParts starts parts in order; on the first failure it stops the started ones in reverse
// and returns that failure, naming the part.
func startParts(ctx context.Context, parts []part) (started []part, err error) {
	for _, p := range parts {
		if p.start != nil {
			if err := p.start(ctx); err != nil {
				return nil, errors.Join(fmt.Errorf("host: start %s: %w", p.name, err), stopParts(ctx, started))
			}
		}
		started = append(started, p)
	}
	return started, nil
}

// stopParts stops parts in reverse order, every one even when some fail.
func stopParts(ctx context.Context, parts []part) error {
	var errs []error
	for i := len(parts) - 1; i >= 0; i-- {
		if parts[i].stop == nil {
			continue
		}
		if err := parts[i].stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("host: stop %s: %w", parts[i].name, err))
		}
	}
	return errors.Join(errs...)
}
