package host

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/redis/go-redis/v9"

	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/tasks"
	"github.com/trellis-run/trellis/host/timers"
	"github.com/trellis-run/trellis/host/timers/localtimers"
	"github.com/trellis-run/trellis/host/timers/recurring"
	"github.com/trellis-run/trellis/host/timers/recurring/locallock"
	"github.com/trellis-run/trellis/host/timers/recurring/redislock"
	"github.com/trellis-run/trellis/host/timers/redistimers"
)

// taskCenter is the host's task center with the stores it owns.
type taskCenter struct {
	center *tasks.Center
	store  timers.Store
	closer func() error
}

// openTaskCenter opens the task store and the tick coordinator — Redis in cluster mode, files
// in the data directory embedded — and starts the center (running due tasks and ticks only on a
// serving host).
func (h *Host) openTaskCenter(ctx context.Context, exec jsvm.Executor, log *execLog, label string) (*taskCenter, error) {
	tc := &taskCenter{}
	var coord recurring.Coordinator
	if h.cfg.RedisURL != "" {
		opts, err := redis.ParseURL(h.cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("host: --redis %q: %w", h.cfg.RedisURL, err)
		}
		client := redis.NewClient(opts)
		prefix := "trellis:" + h.Snapshot().App.Name + ":"
		tc.store = redistimers.New(client, prefix+"timers:")
		coord = redislock.New(client, prefix+"ticks:")
		tc.closer = client.Close
	} else {
		st, err := localtimers.Open(filepath.Join(h.cfg.DataDir, "timers.db"))
		if err != nil {
			return nil, fmt.Errorf("host: open the task store: %w", err)
		}
		tc.store = st
		if h.cfg.ServeEvents {
			lock, err := locallock.Open(filepath.Join(h.cfg.DataDir, "ticks.db"))
			if err != nil {
				_ = st.Close()
				return nil, fmt.Errorf("host: open the tick store: %w", err)
			}
			coord = lock
			tc.closer = lock.Close
		}
	}
	center, err := tasks.New(tasks.Options{
		Store: tc.store, Executor: exec, Log: log.writer, Snapshot: h.Snapshot, Location: h.Location,
		Coordinator: coord, Owner: label, Serve: h.cfg.ServeEvents,
	})
	if err == nil {
		err = center.Start(ctx)
	}
	if err != nil {
		_ = tc.closeStores()
		return nil, fmt.Errorf("host: start the task center: %w", err)
	}
	tc.center = center
	return tc, nil
}

func (tc *taskCenter) closeStores() error {
	var errs []error
	if tc.store != nil {
		errs = append(errs, tc.store.Close())
	}
	if tc.closer != nil {
		errs = append(errs, tc.closer())
	}
	return errors.Join(errs...)
}

func (tc *taskCenter) close(ctx context.Context) error {
	return errors.Join(tc.center.Stop(ctx), tc.closeStores())
}

// Tasks is the task center; nil before Start and after Stop.
func (h *Host) Tasks() *tasks.Center {
	if tc := h.tasks.Load(); tc != nil {
		return tc.center
	}
	return nil
}
