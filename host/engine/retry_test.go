package engine

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/trellis-run/trellis/host/vocab"
)

func TestParseRetry(t *testing.T) {
	t.Parallel()
	p, err := ParseRetry(nil)
	require.NoError(t, err)
	require.Equal(t, RetryPolicy{Policy: RetryDefault, Interval: 5 * time.Minute, MaxAttempts: 5}, p, "5 tries, 5 minutes apart by default")

	p, err = ParseRetry(map[string]any{"policy": "default", "interval": "1m", "maxAttempts": float64(3)})
	require.NoError(t, err)
	require.Equal(t, time.Minute, p.Interval)
	require.Equal(t, 3, p.MaxAttempts)

	for _, bad := range []map[string]any{
		{"policy": "sometimes"},
		{"policy": "cyclic", "interval": "1m"},
		{"interval": "soon"},
		{"interval": "-1m"},
		{"maxAttempts": float64(0)},
		{"policy": "exponential", "interval": "1m", "maxInterval": "10s"},
	} {
		_, err := ParseRetry(bad)
		require.Error(t, err, "%v", bad)
	}
}

func TestRetryNext(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

	none := RetryPolicy{Policy: RetryNone, MaxAttempts: 1}
	_, again := none.Next(1, t0, t0)
	require.False(t, again)

	def := RetryPolicy{Policy: RetryDefault, Interval: time.Minute, MaxAttempts: 3}
	for attempt, want := range map[int]bool{1: true, 2: true, 3: false} {
		d, again := def.Next(attempt, t0, t0)
		require.Equal(t, want, again, "attempt %d", attempt)
		if again {
			require.Equal(t, time.Minute, d)
		}
	}

	cyc := RetryPolicy{Policy: RetryCyclic, Interval: 10 * time.Minute, Window: time.Hour, MaxAttempts: 5}
	_, again = cyc.Next(40, t0, t0.Add(45*time.Minute))
	require.True(t, again, "cyclic ignores maxAttempts while the window lasts")
	_, again = cyc.Next(2, t0, t0.Add(55*time.Minute))
	require.False(t, again, "no retry would land after the window")

	exp := RetryPolicy{Policy: RetryExponential, Interval: time.Second, MaxInterval: 10 * time.Second, MaxAttempts: 10}
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

func TestSenderMatches(t *testing.T) {
	t.Parallel()
	require.True(t, senderMatches("*", "models.User"))
	require.True(t, senderMatches("models.*", "models.User"))
	require.False(t, senderMatches("models.*", "modelsX.User"))
	require.True(t, senderMatches("models.User", "models.User"))
	require.False(t, senderMatches("models.User", "models.UserX"))
}

func TestBroadcastGroupIsStableAcrossRestarts(t *testing.T) {
	t.Parallel()
	name, err := os.Hostname()
	require.NoError(t, err)
	require.Equal(t, name, defaultHostName(), "the host identity is the machine's name, not one process's")
	l := &Listener{HandlerType: HandlerBroadcast, BroadcastIdentifier: "host"}
	require.Equal(t, "broadcast:"+name, l.Group(defaultHostName(), vocab.NewID("inst_")))
	require.Equal(t, l.Group(defaultHostName(), vocab.NewID("inst_")), l.Group(defaultHostName(), vocab.NewID("inst_")))
	l.BroadcastIdentifier = "instance"
	require.NotEqual(t, l.Group("h", "a"), l.Group("h", "b"))
	require.Equal(t, "pool", (&Listener{HandlerType: HandlerPool}).Group("h", "a"))
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
		p := RetryPolicy{Policy: RetryExponential, Interval: tc.interval, MaxInterval: 64 * tc.interval, MaxAttempts: 1000}
		for range 20 {
			d, again := p.Next(tc.attempt, t0, t0)
			require.True(t, again)
			require.GreaterOrEqual(t, d, p.MaxInterval/2, "interval %s, attempt %d", tc.interval, tc.attempt)
			require.LessOrEqual(t, d, p.MaxInterval, "interval %s, attempt %d", tc.interval, tc.attempt)
		}
	}
	// The upper bound of the wait never falls from one try to the next.
	p := RetryPolicy{Policy: RetryExponential, Interval: 5 * time.Hour, MaxInterval: 1 << 62, MaxAttempts: 1000}
	var prev time.Duration
	for attempt := 1; attempt < 100; attempt++ {
		d, _ := p.Next(attempt, t0, t0)
		require.GreaterOrEqual(t, 2*d, prev, "attempt %d", attempt)
		prev = d
	}
}

// TestParseRetryFillsIn: what ParseRetry derives from a partial retry field.
func TestParseRetryFillsIn(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   map[string]any
		want RetryPolicy
	}{
		{"none runs once whatever maxAttempts says", map[string]any{"policy": "none", "maxAttempts": float64(9)},
			RetryPolicy{Policy: RetryNone, Interval: 5 * time.Minute, MaxAttempts: 1}},
		{"exponential caps at 64 intervals by default", map[string]any{"policy": "exponential", "interval": "2s"},
			RetryPolicy{Policy: RetryExponential, Interval: 2 * time.Second, MaxAttempts: 5, MaxInterval: 128 * time.Second}},
		{"cyclic keeps its window", map[string]any{"policy": "cyclic", "interval": "1m", "window": "1h"},
			RetryPolicy{Policy: RetryCyclic, Interval: time.Minute, MaxAttempts: 5, Window: time.Hour}},
		{"maxAttempts from JS is an int64", map[string]any{"maxAttempts": int64(2)},
			RetryPolicy{Policy: RetryDefault, Interval: 5 * time.Minute, MaxAttempts: 2}},
		{"an empty policy is the default", map[string]any{"policy": ""},
			RetryPolicy{Policy: RetryDefault, Interval: 5 * time.Minute, MaxAttempts: 5}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := ParseRetry(tc.in)
			require.NoError(t, err)
			require.Equal(t, tc.want, p)
		})
	}
}
