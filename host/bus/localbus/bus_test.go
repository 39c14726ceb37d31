package localbus

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/host/bus/bustest"
)

func testOptions() Options {
	return Options{TrimInterval: 20 * time.Millisecond}
}

func open(t *testing.T, dir string, opts Options) *Bus {
	t.Helper()
	b, err := Open(dir, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// reopen crashes b (kill -9: its unwritten records are lost) and opens its directory again.
func reopen(t *testing.T, b bus.Bus) bus.Bus {
	t.Helper()
	lb := b.(*Bus)
	lb.crash()
	return open(t, lb.dir, lb.opts)
}

func TestConformance(t *testing.T) {
	t.Parallel()
	bustest.Run(t, func(t *testing.T) bus.Bus {
		return open(t, t.TempDir(), testOptions())
	}, bustest.Options{
		Restartable: func(t *testing.T) (bus.Bus, func(t *testing.T) bus.Bus) {
			b := open(t, t.TempDir(), testOptions())
			return b, func(t *testing.T) bus.Bus { return reopen(t, b) }
		},
		Crash:    reopen,
		AutoTrim: true,
	})
}
