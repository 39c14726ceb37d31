package localtimers

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/trellis-run/trellis/host/timers/timerstest"
)

// go test -run '^$' -bench . -benchtime 2000x ./host/timers/localtimers/
// (TRELLIS_BENCH_TIMERS_N=1000000 for the brief's figure: filling takes minutes.)

func BenchmarkCreate(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), FileName))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	timerstest.BenchCreate(b, s)
}

// lateness is the store the lateness benchmark fills once: Go calls a benchmark function
// several times while it settles b.N.
var lateness struct {
	once sync.Once
	dir  string
	s    *Store
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if lateness.s != nil {
		_ = lateness.s.Close()
		_ = os.RemoveAll(lateness.dir)
	}
	os.Exit(code)
}

func BenchmarkLateness(b *testing.B) {
	n := timerstest.BenchN(b)
	lateness.once.Do(func() {
		lateness.dir, lateness.err = os.MkdirTemp("", "timers-bench-")
		if lateness.err != nil {
			return
		}
		path := filepath.Join(lateness.dir, FileName)
		if lateness.s, lateness.err = Open(path); lateness.err != nil {
			return
		}
		took, err := timerstest.FillPending(context.Background(), lateness.s, n)
		lateness.err = err
		st, _ := os.Stat(path + "-wal")
		db, _ := os.Stat(path)
		size := int64(0)
		for _, f := range []os.FileInfo{st, db} {
			if f != nil {
				size += f.Size()
			}
		}
		b.Logf("filled %d pending tasks in %s (%.0f/s); database %.1f MiB", n, took, float64(n)/took.Seconds(), float64(size)/(1<<20))
	})
	if lateness.err != nil {
		b.Fatal(lateness.err)
	}
	timerstest.MeasureLateness(b, lateness.s)
}
