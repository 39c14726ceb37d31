package recurring

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// schedule is a template's tick times. The same value drives gocron (through gocronSchedule) and
// the scheduler's own arithmetic (which tick a firing timer stands for, which tick was missed),
// so both agree on every time.
type schedule interface {
	// next returns the first tick strictly after t, in UTC, or the zero time if there is none.
	next(t time.Time) time.Time
}

// intervalSchedule ticks at the multiples of d since the Unix epoch: every host computes the
// same times whenever it started.
type intervalSchedule struct{ d time.Duration }

func (s intervalSchedule) next(t time.Time) time.Time {
	n, d := t.UnixNano(), int64(s.d)
	k := n / d
	if n%d < 0 { // floor for times before 1970
		k--
	}
	return time.Unix(0, (k+1)*d).UTC()
}

// cronSchedule is a parsed cron expression evaluated in loc.
type cronSchedule struct {
	spec cron.Schedule
	loc  *time.Location
}

func (s cronSchedule) next(t time.Time) time.Time {
	// robfig/cron evaluates a schedule without CRON_TZ in the location of the time it is given.
	n := s.spec.Next(t.In(s.loc))
	// When clocks fall back, one wall-clock time happens twice; cron runs it once, at the first.
	// Deciding by the tick alone (not by where the search started) keeps every host, whenever it
	// started, on the same set of ticks.
	for !n.IsZero() && repeatsWallClock(n) {
		n = s.spec.Next(n)
	}
	if n.IsZero() {
		return n
	}
	return n.UTC()
}

// repeatsWallClock reports whether an earlier instant had n's wall-clock time (n is in the
// hour a fall-back repeats). Zones shift by 30 minutes to 2 hours.
func repeatsWallClock(n time.Time) bool {
	for _, d := range []time.Duration{30 * time.Minute, time.Hour, 2 * time.Hour} {
		if sameWallClock(n.Add(-d).In(n.Location()), n) {
			return true
		}
	}
	return false
}

func sameWallClock(a, b time.Time) bool {
	ay, am, ad := a.Date()
	by, bm, bd := b.Date()
	return ay == by && am == bm && ad == bd && a.Hour() == b.Hour() && a.Minute() == b.Minute() && a.Second() == b.Second()
}

var (
	cronFields5 = []string{"minute", "hour", "day-of-month", "month", "day-of-week"}
	cronFields6 = append([]string{"second"}, cronFields5...)
	cronRanges  = map[string]string{
		"second": "0-59", "minute": "0-59", "hour": "0-23", "day-of-month": "1-31",
		"month": "1-12 or JAN-DEC", "day-of-week": "0-6 or SUN-SAT, Sunday is 0",
	}
	parser5 = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)
	parser6 = cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)
)

// ValidateCron checks a template's cron expression: 5 fields (minute hour day-of-month month
// day-of-week) or 6 (second first). The error wraps ErrInvalidCron and names the wrong field and
// its allowed values, so the editor can show it as it is.
func ValidateCron(expr string) error {
	_, err := parseCron(expr, time.UTC)
	return err
}

func parseCron(expr string, loc *time.Location) (schedule, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidCron, expr, fmt.Sprintf(format, args...))
	}
	trimmed := strings.TrimSpace(expr)
	if trimmed == "" {
		return nil, bad("it is empty; write 5 fields (minute hour day-of-month month day-of-week) or 6 (second first), e.g. \"*/5 * * * *\"")
	}
	if strings.HasPrefix(trimmed, "@") || strings.HasPrefix(trimmed, "TZ=") || strings.HasPrefix(trimmed, "CRON_TZ=") {
		return nil, bad("descriptors and time-zone prefixes are not accepted; write 5 or 6 fields and set the template's timezone field")
	}
	fields := strings.Fields(trimmed)
	var names []string
	var p cron.Parser
	switch len(fields) {
	case 5:
		names, p = cronFields5, parser5
	case 6:
		names, p = cronFields6, parser6
	default:
		return nil, bad("it has %d fields; write 5 (minute hour day-of-month month day-of-week) or 6 (second minute hour day-of-month month day-of-week)", len(fields))
	}
	spec, err := p.Parse(strings.Join(fields, " "))
	if err != nil {
		return nil, bad("%s", explainCronError(fields, names, p, err))
	}
	s := cronSchedule{spec: spec, loc: loc}
	// A well-formed expression can still name no real date (30 February).
	probe := time.Date(2000, 1, 1, 0, 0, 0, 0, loc)
	if s.next(probe).IsZero() {
		return nil, bad("it names no date that exists (such as 30 February); check day-of-month and month")
	}
	return s, nil
}

// explainCronError finds the fields robfig/cron rejects (it does not say which) by parsing each
// one with every other field set to "*".
func explainCronError(fields, names []string, p cron.Parser, whole error) string {
	var msgs []string
	for i, f := range fields {
		probe := make([]string, len(fields))
		for j := range probe {
			probe[j] = "*"
		}
		probe[i] = f
		if _, err := p.Parse(strings.Join(probe, " ")); err != nil {
			msgs = append(msgs, fmt.Sprintf("%s field %q: %v (allowed: %s, with * , - and /)", names[i], f, err, cronRanges[names[i]]))
		}
	}
	if len(msgs) == 0 {
		return whole.Error()
	}
	return strings.Join(msgs, "; ")
}

// latestTick returns the latest tick t of s with after < t <= upTo. It looks back from upTo in
// doubling windows, so a long gap (weeks of downtime, a per-second cron) costs a few dozen next
// calls rather than one per missed tick.
func latestTick(s schedule, after, upTo time.Time) (time.Time, bool) {
	if !upTo.After(after) {
		return time.Time{}, false
	}
	for w := time.Second; ; w *= 2 {
		from := after
		if w < upTo.Sub(after) {
			from = upTo.Add(-w)
		}
		if t := s.next(from); !t.IsZero() && !t.After(upTo) {
			for {
				n := s.next(t)
				if n.IsZero() || n.After(upTo) {
					return t, true
				}
				t = n
			}
		}
		if from.Equal(after) {
			return time.Time{}, false
		}
	}
}

// gocronSchedule adapts a schedule to gocron's Cron interface (gocron.WithCronImplementation), so
// gocron arms its timers at exactly the times the scheduler computes. gocron passes and gets
// UTC times (the scheduler runs gocron in UTC).
type gocronSchedule struct{ s schedule }

func (g gocronSchedule) IsValid(string, *time.Location, time.Time) error {
	if g.s == nil {
		return errors.New("recurring: no schedule")
	}
	return nil
}

func (g gocronSchedule) Next(lastRun time.Time) time.Time { return g.s.next(lastRun) }
