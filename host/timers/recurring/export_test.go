package recurring

import "time"

// Observe makes a test see what became of every tick on s (one final outcome per tick and
// host, and "waiting" before a serial tick waits). Set it before Start.
func Observe(s *Scheduler, f func(t Tick, outcome string)) { s.observe.Store(&f) }

// Outcomes as Observe reports them.
const (
	OutcomeFired     = outcomeFired
	OutcomeElsewhere = outcomeElsewhere
	OutcomeWaiting   = outcomeWaiting
	OutcomeDiscarded = outcomeDiscarded
	OutcomeFailed    = outcomeFailed
	OutcomeDropped   = outcomeDropped
)

// LatestTick exposes latestTick to the external tests.
func LatestTick(cronOrInterval string, interval time.Duration, loc *time.Location, after, upTo time.Time) (time.Time, bool, error) {
	s, err := testSchedule(cronOrInterval, interval, loc)
	if err != nil {
		return time.Time{}, false, err
	}
	at, ok := latestTick(s, after, upTo)
	return at, ok, nil
}

// NextTick exposes a schedule's next tick after t.
func NextTick(cronExpr string, interval time.Duration, loc *time.Location, t time.Time) (time.Time, error) {
	s, err := testSchedule(cronExpr, interval, loc)
	if err != nil {
		return time.Time{}, err
	}
	return s.next(t), nil
}

func testSchedule(cronExpr string, interval time.Duration, loc *time.Location) (schedule, error) {
	_, s, err := Template{FullName: "tasks.T", Cron: cronExpr, Interval: interval, Location: loc}.normalize()
	return s, err
}

// GocronJobs is how many gocron jobs s keeps: one per distinct schedule.
func GocronJobs(s *Scheduler) int { return len(s.cron.Jobs()) }
