package localbus

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/bus/bustest"
)

// BenchmarkEndToEnd: publishers sending one message per Publish, one group of 1 or 4 members
// acking each message, persistence on (every Publish waits for its group commit's fdatasync);
// msgs/s from the first Publish to the last ack, and fsyncs per message.
//
//	go test -run '^$' -bench EndToEnd -benchtime 100000x ./host/bus/localbus/
func BenchmarkEndToEnd(b *testing.B) {
	for _, c := range []struct{ pubs, subs int }{{1, 1}, {16, 1}, {16, 4}, {64, 4}} {
		b.Run(fmt.Sprintf("pubs=%d/subs=%d", c.pubs, c.subs), func(b *testing.B) {
			bs, err := Open(b.TempDir(), Options{})
			require.NoError(b, err)
			defer bs.Close()
			var syncs int64
			bustest.RunLoad(b, bs, "events", bustest.Load{Publishers: c.pubs, Subscribers: c.subs}, func() {
				syncs = bs.alog.Stats().Syncs
			})
			b.ReportMetric(float64(bs.alog.Stats().Syncs-syncs)/float64(b.N), "fsyncs/msg")
		})
	}
}
