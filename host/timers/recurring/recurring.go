package recurring

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"
)

// Misfire policies (docs/reference.md §4 "misfire").
const (
	// MisfireFireOnce runs one catch-up tick, at the latest missed time, for the ticks a template
	// missed while no host ran it. It is the default.
	MisfireFireOnce = "fireOnce"
	// MisfireSkip drops missed ticks: the template goes on with its next scheduled time.
	MisfireSkip = "skip"
)

// Concurrency policies (docs/reference.md §4 "concurrency"): what a tick does while the previous run of
// the same template is still going, on any host.
const (
	// ConcurrencySerial makes the tick wait and run after the previous run. It is the default.
	ConcurrencySerial = "serial"
	// ConcurrencyDiscard drops the tick.
	ConcurrencyDiscard = "discard"
	// ConcurrencyParallel runs the tick at once, beside the previous run.
	ConcurrencyParallel = "parallel"
)

// DefaultRunLockTTL is how long a run lock outlives a host that died holding it.
const DefaultRunLockTTL = 30 * time.Second

// Template is the part of a cron or interval task template the scheduler needs. The host builds
// it from a validated tasks.NormalType element; FullName names the element.
type Template struct {
	FullName string
	// Cron is a 5-field (minute first) or 6-field (second first) expression; exactly one of
	// Cron and Interval is set.
	Cron string
	// Interval ticks at the multiples of Interval since the Unix epoch, so every host agrees on
	// the tick times; at least one second.
	Interval time.Duration
	// Location is the time zone of Cron (nil = UTC). Intervals ignore it.
	Location *time.Location
	// Misfire is MisfireFireOnce or MisfireSkip ("" = fireOnce).
	Misfire string
	// Concurrency is ConcurrencySerial, ConcurrencyDiscard or ConcurrencyParallel ("" = serial).
	Concurrency string
	// Version changes whenever the template's definition changes; Sync reschedules a template
	// whose Version (or any field above) changed.
	Version string
}

// Tick is one run the scheduler hands to Fire. At is the *scheduled* time of the tick (identical
// on every host, in UTC), not the moment the timer went off. CatchUp marks a misfire catch-up run.
type Tick struct {
	Template string
	At       time.Time
	CatchUp  bool
}

// Coordinator makes ticks exactly-once across hosts and remembers the last tick per template.
// Implementations are safe for concurrent use and wrap ErrInvalidArgument for an empty template,
// a zero time or a non-positive ttl.
type Coordinator interface {
	// ClaimTick returns true for exactly one caller per (template, at), on any host, and then
	// records at as the template's last tick if it is later than the one recorded.
	ClaimTick(ctx context.Context, template string, at time.Time) (bool, error)
	// LastTick returns the latest tick claimed for the template (ok=false if none ever was).
	LastTick(ctx context.Context, template string) (time.Time, bool, error)
	// AcquireRun takes the template's run lock (serial/discard across hosts) for ttl, renewed by
	// the returned lease until released; ok=false if held elsewhere. release is safe to call
	// more than once; a host that dies holding the lock loses it ttl later.
	AcquireRun(ctx context.Context, template string, ttl time.Duration) (release func(), ok bool, err error)
}

// Options configure New.
type Options struct {
	// Coordinator decides which host runs each tick; required.
	Coordinator Coordinator
	// Fire runs the tick's task to the end (the host records it); required. Its context is
	// cancelled only when Stop gives up waiting for it. An error is logged, nothing more: a
	// failed tick is not retried here (the task's own retry policy is the host's business).
	Fire func(ctx context.Context, t Tick) error
	// Clock drives gocron's timers (gocron.WithClock); nil = the real clock. Tests pass a
	// clockwork.FakeClock.
	Clock clockwork.Clock
	// Logger receives the scheduler's and gocron's messages; nil = discard.
	Logger *slog.Logger
	// RunLockTTL is the ttl of run locks [DefaultRunLockTTL].
	RunLockTTL time.Duration
}

// WithDefaults returns o with every unset optional field filled in.
func (o Options) WithDefaults() Options {
	if o.Clock == nil {
		o.Clock = clockwork.NewRealClock()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RunLockTTL == 0 {
		o.RunLockTTL = DefaultRunLockTTL
	}
	return o
}

func (o Options) validate() error {
	if o.Coordinator == nil {
		return fmt.Errorf("%w: Coordinator is nil; pass redislock.New(...) in a cluster or locallock.Open(...) embedded", ErrInvalidOptions)
	}
	if o.Fire == nil {
		return fmt.Errorf("%w: Fire is nil; pass the function that runs one tick's task", ErrInvalidOptions)
	}
	if o.RunLockTTL < time.Second {
		return fmt.Errorf("%w: RunLockTTL is %s; use at least 1s (0 = %s)", ErrInvalidOptions, o.RunLockTTL, DefaultRunLockTTL)
	}
	return nil
}

// normalize fills a template's defaults and checks it; the error names the template and field.
func (t Template) normalize() (Template, schedule, error) {
	bad := func(format string, args ...any) (Template, schedule, error) {
		return t, nil, fmt.Errorf("%w %q: %s", ErrInvalidTemplate, t.FullName, fmt.Sprintf(format, args...))
	}
	if t.FullName == "" {
		return bad("FullName is empty; set it to the task element's fullName")
	}
	if t.Location == nil {
		t.Location = time.UTC
	}
	switch t.Misfire {
	case "":
		t.Misfire = MisfireFireOnce
	case MisfireFireOnce, MisfireSkip:
	default:
		return bad("misfire %q is unknown; use %q or %q", t.Misfire, MisfireFireOnce, MisfireSkip)
	}
	switch t.Concurrency {
	case "":
		t.Concurrency = ConcurrencySerial
	case ConcurrencySerial, ConcurrencyDiscard, ConcurrencyParallel:
	default:
		return bad("concurrency %q is unknown; use %q, %q or %q", t.Concurrency, ConcurrencySerial, ConcurrencyDiscard, ConcurrencyParallel)
	}
	switch {
	case t.Cron != "" && t.Interval != 0:
		return bad("both cron %q and interval %s are set; keep one", t.Cron, t.Interval)
	case t.Cron != "":
		s, err := parseCron(t.Cron, t.Location)
		if err != nil {
			return t, nil, fmt.Errorf("template %q: %w", t.FullName, err)
		}
		return t, s, nil
	case t.Interval < 0:
		return bad("interval %s is negative; use a positive duration such as 10m", t.Interval)
	case t.Interval == 0:
		return bad("neither cron nor interval is set; give one of them")
	case t.Interval < time.Second:
		return bad("interval %s is shorter than 1s; use 1s or more", t.Interval)
	default:
		return t, intervalSchedule{d: t.Interval}, nil
	}
}

// sameDefinition reports whether two normalized templates schedule and run alike.
func sameDefinition(a, b Template) bool {
	return a.Cron == b.Cron && a.Interval == b.Interval && a.Location.String() == b.Location.String() &&
		a.Misfire == b.Misfire && a.Concurrency == b.Concurrency && a.Version == b.Version
}
