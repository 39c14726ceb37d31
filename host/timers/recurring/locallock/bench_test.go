package locallock_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkClaimTick measures one claim (a SQLite transaction) on the embedded backend, with
// concurrent claimers as a tick of many templates makes them:
//
//	go test -run '^$' -bench ClaimTick ./host/timers/recurring/locallock/
func BenchmarkClaimTick(b *testing.B) {
	c := open(b, filepath.Join(b.TempDir(), "recurring.db"))
	ctx := context.Background()
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if _, err := c.ClaimTick(ctx, fmt.Sprintf("tasks.T%d", i%10000), at.Add(time.Duration(i/10000)*time.Minute)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
