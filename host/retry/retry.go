// Package retry is the arithmetic of retry policies, shared by the event center (a listener's
// retry field) and the task center (a task template's): how an element's retry field reads, and
// when a node or task that failed its n-th try runs again, if at all.
//
// It owns no state and runs nothing: each part keeps its own pending retries durably (the event
// center on a retry queue of the bus, the task center in the task store) and asks Next when a
// try fails. It imports nothing of ours, so both can use it.
package retry

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Policy names (docs/reference.md §3.5).
const (
	None        = "none"
	Default     = "default"
	Cyclic      = "cyclic"
	Exponential = "exponential"
)

// Policy says when a failed node or task runs again.
type Policy struct {
	Policy      string
	Interval    time.Duration
	MaxAttempts int
	Window      time.Duration
	MaxInterval time.Duration
}

// Parse reads an element's retry field (a JSON object: policy, interval, maxAttempts, window,
// maxInterval). What the field leaves out is def's; a field that is not an object is def. It
// refuses what Next could not run: an unknown policy, a duration that is not positive, cyclic
// without a window, maxInterval below interval, maxAttempts below 1. Policy none allows one try.
func Parse(v any, def Policy) (Policy, error) {
	p := def
	m, _ := v.(map[string]any)
	if s, ok := m["policy"].(string); ok && s != "" {
		p.Policy = s
	}
	var err error
	dur := func(key string, into *time.Duration) {
		if s, ok := m[key].(string); ok && s != "" && err == nil {
			d, perr := time.ParseDuration(s)
			if perr != nil || d <= 0 {
				err = fmt.Errorf("retry.%s %q is not a positive duration such as 1m or 30s", key, s)
				return
			}
			*into = d
		}
	}
	dur("interval", &p.Interval)
	dur("window", &p.Window)
	dur("maxInterval", &p.MaxInterval)
	if err != nil {
		return p, err
	}
	switch n := m["maxAttempts"].(type) {
	case float64:
		p.MaxAttempts = int(n)
	case int64:
		p.MaxAttempts = int(n)
	case int:
		p.MaxAttempts = n
	}
	switch p.Policy {
	case None:
		p.MaxAttempts = 1
	case Default:
	case Cyclic:
		if p.Window <= 0 {
			return p, fmt.Errorf("retry policy cyclic needs a window (how long to keep retrying), such as \"1h\"")
		}
	case Exponential:
		if p.MaxInterval == 0 {
			p.MaxInterval = 64 * p.Interval
		}
		if p.MaxInterval < p.Interval {
			return p, fmt.Errorf("retry.maxInterval %s is shorter than retry.interval %s", p.MaxInterval, p.Interval)
		}
	default:
		return p, fmt.Errorf("retry.policy %q is not none, default, cyclic or exponential", p.Policy)
	}
	if p.Policy != None && p.Interval <= 0 {
		return p, fmt.Errorf("retry policy %s needs an interval above zero, such as \"1m\"", p.Policy)
	}
	if p.MaxAttempts < 1 {
		return p, fmt.Errorf("retry.maxAttempts must be 1 or more, got %d", p.MaxAttempts)
	}
	return p, nil
}

// Next says whether what failed its attempt-th try (1-based) runs again, and after how long.
// firstTry is when the first try started (cyclic retries stop when the window has passed); now
// is when this try ended.
func (p Policy) Next(attempt int, firstTry, now time.Time) (time.Duration, bool) {
	switch p.Policy {
	case None:
		return 0, false
	case Cyclic:
		if now.Add(p.Interval).Sub(firstTry) > p.Window {
			return 0, false
		}
		return p.Interval, true
	case Exponential:
		if attempt >= p.MaxAttempts {
			return 0, false
		}
		// Interval doubles per try up to MaxInterval. Compared before shifting: shifted first, a
		// long interval outgrows int64 after a few dozen tries and can wrap to a shorter wait.
		d := p.MaxInterval
		if shift := attempt - 1; shift < 63 && p.Interval <= p.MaxInterval>>shift {
			d = p.Interval << shift
		}
		// Full jitter in the upper half keeps retries of many nodes from arriving together.
		return d/2 + time.Duration(rand.Int64N(int64(d/2)+1)), true
	default:
		if attempt >= p.MaxAttempts {
			return 0, false
		}
		return p.Interval, true
	}
}
