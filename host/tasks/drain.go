package tasks

import (
	"context"
	"errors"
)

// Drain is the first half of a graceful stop: no more ticks of cron and interval templates and
// no more due tasks are taken, while the task functions already running go on to their end until
// ctx ends. Stop follows and cancels what has not finished.
func (c *Center) Drain(ctx context.Context) error {
	c.mu.Lock()
	runner, sched := c.runner, c.scheduler
	c.mu.Unlock()
	var errs []error
	if sched != nil {
		errs = append(errs, sched.Stop(ctx)) // it waits for running ticks; Stop again is a no-op
	}
	if runner != nil {
		errs = append(errs, runner.Drain(ctx))
	}
	return errors.Join(errs...)
}
