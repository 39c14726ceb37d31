package retry_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/retry"
)

// listener is the event center's default (a listener without a retry field); task templates
// default to none.
var listener = retry.Policy{Policy: retry.Default, Interval: 5 * time.Minute, MaxAttempts: 5}

func TestParse(t *testing.T) {
	t.Parallel()
	p, err := retry.Parse(nil, listener)
	require.NoError(t, err)
	require.Equal(t, listener, p, "no field: the default")
	p, err = retry.Parse("often", listener)
	require.NoError(t, err)
	require.Equal(t, listener, p, "not an object: the default (the registry reports the type)")

	p, err = retry.Parse(map[string]any{"policy": "default", "interval": "1m", "maxAttempts": float64(3)}, listener)
	require.NoError(t, err)
	require.Equal(t, time.Minute, p.Interval)
	require.Equal(t, 3, p.MaxAttempts)

	task := retry.Policy{Policy: retry.None, Interval: 5 * time.Minute, MaxAttempts: 5}
	p, err = retry.Parse(map[string]any{"interval": "2s"}, task)
	require.NoError(t, err)
	require.Equal(t, retry.Policy{Policy: retry.None, Interval: 2 * time.Second, MaxAttempts: 1}, p, "def's policy when the field names none")

	for _, bad := range []map[string]any{
		{"policy": "sometimes"},
		{"policy": "cyclic", "interval": "1m"},
		{"interval": "soon"},
		{"interval": "-1m"},
		{"interval": "0s"},
		{"window": "0s"},
		{"maxAttempts": float64(0)},
		{"maxAttempts": int64(-3)},
		{"policy": "exponential", "interval": "1m", "maxInterval": "10s"},
	} {
		_, err := retry.Parse(bad, listener)
		require.Error(t, err, "%v", bad)
	}
	_, err = retry.Parse(map[string]any{"policy": "default"}, retry.Policy{MaxAttempts: 3})
	require.ErrorContains(t, err, "needs an interval above zero", "a default without an interval cannot run")
}

// TestParseFillsIn: what Parse derives from a partial retry field.
func TestParseFillsIn(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   map[string]any
		want retry.Policy
	}{
		{"none runs once whatever maxAttempts says", map[string]any{"policy": "none", "maxAttempts": float64(9)},
			retry.Policy{Policy: retry.None, Interval: 5 * time.Minute, MaxAttempts: 1}},
		{"exponential caps at 64 intervals by default", map[string]any{"policy": "exponential", "interval": "2s"},
			retry.Policy{Policy: retry.Exponential, Interval: 2 * time.Second, MaxAttempts: 5, MaxInterval: 128 * time.Second}},
		{"cyclic keeps its window", map[string]any{"policy": "cyclic", "interval": "1m", "window": "1h"},
			retry.Policy{Policy: retry.Cyclic, Interval: time.Minute, MaxAttempts: 5, Window: time.Hour}},
		{"maxAttempts from JS is an int64", map[string]any{"maxAttempts": int64(2)},
			retry.Policy{Policy: retry.Default, Interval: 5 * time.Minute, MaxAttempts: 2}},
		{"an empty policy is the default's", map[string]any{"policy": ""},
			retry.Policy{Policy: retry.Default, Interval: 5 * time.Minute, MaxAttempts: 5}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := retry.Parse(tc.in, listener)
			require.NoError(t, err)
			require.Equal(t, tc.want, p)
		})
	}
}

func TestNext(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

	none := retry.Policy{Policy: retry.None, MaxAttempts: 1}
	_, again := none.Next(1, t0, t0)
	require.False(t, again)

	def := retry.Policy{Policy: retry.Default, Interval: time.Minute, MaxAttempts: 3}
	for attempt, want := range map[int]bool{1: true, 2: true, 3: false, 4: false} {
		d, again := def.Next(attempt, t0, t0)
		require.Equal(t, want, again, "attempt %d", attempt)
		if again {
			require.Equal(t, time.Minute, d)
		}
	}

	cyc := retry.Policy{Policy: retry.Cyclic, Interval: 10 * time.Minute, Window: time.Hour, MaxAttempts: 5}
	_, again = cyc.Next(40, t0, t0.Add(45*time.Minute))
	require.True(t, again, "cyclic ignores maxAttempts while the window lasts")
	_, again = cyc.Next(2, t0, t0.Add(55*time.Minute))
	require.False(t, again, "no retry would land after the window")

	exp := retry.Policy{Policy: retry.Exponential, Interval: time.Second, MaxInterval: 10 * time.Second, MaxAttempts: 10}
	for attempt := 1; attempt < 10; attempt++ {
		d, again := exp.Next(attempt, t0, t0)
		require.True(t, again)
		full := min(time.Second<<(attempt-1), 10*time.Second)
		require.GreaterOrEqual(t, d, full/2, "attempt %d", attempt)
		require.LessOrEqual(t, d, full, "attempt %d", attempt)
	}
	_, again = exp.Next(10, t0, t0)
	require.False(t, again)
}

// TestExponentialNeverWrapsAround: interval << (attempt-1) outgrows int64 after enough tries of
// a long interval; the wait must then be the cap, never a wrapped-around shorter one.
func TestExponentialNeverWrapsAround(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		interval time.Duration
		attempt  int
	}{
		{3*time.Hour + 7*time.Minute + 50*time.Second, 27}, // wraps to 108h, under the 200h cap
		{6*time.Hour + 15*time.Minute + 40*time.Second, 26},
		{7*time.Hour + 20*time.Minute + 57*time.Second, 31},
		{time.Minute, 29}, // wraps negative
		{time.Hour, 200},
	}
	for _, tc := range cases {
		p := retry.Policy{Policy: retry.Exponential, Interval: tc.interval, MaxInterval: 64 * tc.interval, MaxAttempts: 1000}
		for range 20 {
			d, again := p.Next(tc.attempt, t0, t0)
			require.True(t, again)
			require.GreaterOrEqual(t, d, p.MaxInterval/2, "interval %s, attempt %d", tc.interval, tc.attempt)
			require.LessOrEqual(t, d, p.MaxInterval, "interval %s, attempt %d", tc.interval, tc.attempt)
		}
	}
	// The upper bound of the wait never falls from one try to the next.
	p := retry.Policy{Policy: retry.Exponential, Interval: 5 * time.Hour, MaxInterval: 1 << 62, MaxAttempts: 1000}
	var prev time.Duration
	for attempt := 1; attempt < 100; attempt++ {
		d, _ := p.Next(attempt, t0, t0)
		require.GreaterOrEqual(t, 2*d, prev, "attempt %d", attempt)
		prev = d
	}
}
