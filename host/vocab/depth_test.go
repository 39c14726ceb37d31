package vocab_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/vocab"
)

func TestDeeperThan(t *testing.T) {
	t.Parallel()
	nest := func(n int) any {
		var v any = "x"
		for i := 0; i < n; i++ {
			if i%2 == 0 {
				v = []any{v}
			} else {
				v = map[string]any{"k": v, "s": 1}
			}
		}
		return v
	}
	for _, c := range []struct {
		v     any
		depth int
	}{{"x", 0}, {nil, 0}, {[]any{}, 1}, {map[string]any{}, 1}, {[]any{1, []any{}}, 2}, {nest(64), 64}, {nest(9000), 9000}} {
		require.False(t, vocab.DeeperThan(c.v, c.depth), "depth %d within %d", c.depth, c.depth)
		if c.depth > 0 {
			require.True(t, vocab.DeeperThan(c.v, c.depth-1), "depth %d over %d", c.depth, c.depth-1)
		}
	}
}

func TestJSONDeeperThan(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat(`{"a":[`, 4500) + strings.Repeat(`]}`, 4500) // 9,000 levels in 45 KiB
	for _, c := range []struct {
		json  string
		depth int
	}{
		{`1`, 0}, {`"[[[{{{"`, 0}, {`[]`, 1}, {`{"a": "]]]\"[["}`, 1}, {`[[1], {"b": [2]}]`, 3}, {deep, 9000},
	} {
		require.False(t, vocab.JSONDeeperThan([]byte(c.json), c.depth), c.json)
		if c.depth > 0 {
			require.True(t, vocab.JSONDeeperThan([]byte(c.json), c.depth-1), c.json)
		}
	}
}
