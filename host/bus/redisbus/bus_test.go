package redisbus

import (
	"testing"

	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/host/bus/bustest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	url := redisURL(t)
	peer := func(t *testing.T, b bus.Bus) bus.Bus {
		return newBus(t, b.(*Bus).opts)
	}
	bustest.Run(t, func(t *testing.T) bus.Bus {
		return newBus(t, testOptions(url, newPrefix(t, url)))
	}, bustest.Options{
		Restartable: func(t *testing.T) (bus.Bus, func(t *testing.T) bus.Bus) {
			srv := startServer(t)
			b := newBus(t, testOptions(srv.URL(), "trellis:bus:"))
			return b, func(t *testing.T) bus.Bus {
				srv.Kill()
				srv.Start()
				return b
			}
		},
		// A crashed host's bus stops as kill -9 would; the survivor is another bus on the same
		// Redis and prefix.
		Crash: func(t *testing.T, b bus.Bus) bus.Bus {
			rb := b.(*Bus)
			rb.crash()
			return newBus(t, rb.opts)
		},
		Peer:     peer,
		AutoTrim: true,
	})
}

// On a Redis Cluster the bus passes the same suite: streams tagged by topic, the readers on the
// master of their topic's slot. (No restart case: the shared cluster is never restarted.)
func TestConformanceCluster(t *testing.T) {
	t.Parallel()
	url := clusterURL(t)
	bustest.Run(t, func(t *testing.T) bus.Bus {
		return newBus(t, testOptions(url, newPrefix(t, url)))
	}, bustest.Options{
		Crash: func(t *testing.T, b bus.Bus) bus.Bus {
			rb := b.(*Bus)
			rb.crash()
			return newBus(t, rb.opts)
		},
		Peer:     func(t *testing.T, b bus.Bus) bus.Bus { return newBus(t, b.(*Bus).opts) },
		AutoTrim: true,
	})
}
