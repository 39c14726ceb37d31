package engine

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Retry policies (the event center's: none, default, cyclic; plus exponential).
const (
	RetryNone        = "none"
	RetryDefault     = "default"
	RetryCyclic      = "cyclic"
	RetryExponential = "exponential"
)

// RetryPolicy says when a failed node runs again.
type RetryPolicy struct {
	Policy      string
	Interval    time.Duration
	MaxAttempts int
	Window      time.Duration
	MaxInterval time.Duration
}

// ParseRetry reads an element's retry field; a missing field is the default policy (5 tries,
// 5 minutes apart).
func ParseRetry(v any) (RetryPolicy, error) {
	p := RetryPolicy{Policy: RetryDefault, Interval: 5 * time.Minute, MaxAttempts: 5}
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
	case RetryNone:
		p.MaxAttempts = 1
	case RetryDefault:
	case RetryCyclic:
		if p.Window <= 0 {
			return p, fmt.Errorf("retry policy cyclic needs a window (how long to keep retrying), such as \"1h\"")
		}
	case RetryExponential:
		if p.MaxInterval == 0 {
			p.MaxInterval = 64 * p.Interval
		}
		if p.MaxInterval < p.Interval {
			return p, fmt.Errorf("retry.maxInterval %s is shorter than retry.interval %s", p.MaxInterval, p.Interval)
		}
	default:
		return p, fmt.Errorf("retry.policy %q is not none, default, cyclic or exponential", p.Policy)
	}
	if p.MaxAttempts < 1 {
		return p, fmt.Errorf("retry.maxAttempts must be 1 or more, got %d", p.MaxAttempts)
	}
	return p, nil
}

// Next says whether a node that failed its attempt-th try (1-based) runs again, and after how
// long. firstTry is when the node first ran (cyclic retries stop when the window has passed).
func (p RetryPolicy) Next(attempt int, firstTry, now time.Time) (time.Duration, bool) {
	switch p.Policy {
	case RetryNone:
		return 0, false
	case RetryCyclic:
		if now.Add(p.Interval).Sub(firstTry) > p.Window {
			return 0, false
		}
		return p.Interval, true
	case RetryExponential:
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
