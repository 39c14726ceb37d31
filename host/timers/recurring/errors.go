package recurring

import "errors"

// Sentinel errors; callers test them with errors.Is. The wrapped messages say what to change.
var (
	// ErrInvalidCron: a cron expression that does not parse or never fires.
	ErrInvalidCron = errors.New("recurring: invalid cron expression")
	// ErrInvalidTemplate: a Template passed to Sync is incomplete or contradictory.
	ErrInvalidTemplate = errors.New("recurring: invalid template")
	// ErrInvalidOptions: New was given unusable Options.
	ErrInvalidOptions = errors.New("recurring: invalid options")
	// ErrInvalidArgument: a Coordinator was called with an empty template name, a zero time or a
	// non-positive ttl. Every backend wraps it, so callers see one error for one mistake.
	ErrInvalidArgument = errors.New("recurring: invalid argument")
	// ErrStopped: the Scheduler was stopped; a stopped Scheduler cannot be started again.
	ErrStopped = errors.New("recurring: scheduler stopped")
)
