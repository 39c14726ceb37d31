package localstore_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellis-run/trellis/logstore"
	"github.com/trellis-run/trellis/logstore/localstore"
)

// rowGen makes rows shaped like real ones: ~200 elements, a few hosts, requests of 1–4 nodes in
// a call tree, 2–3 states per node, ~300-byte kwargs, random ids, ~10% failures.
type rowGen struct {
	rng      *rand.Rand
	names    []string
	hosts    []string
	at       time.Time
	step     time.Duration
	requests []string // a sample, for ByRequest
}

func newRowGen(seed uint64, start time.Time, step time.Duration) *rowGen {
	g := &rowGen{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), at: start, step: step}
	kinds := []string{"events", "tasks", "services"}
	for i := range 200 {
		g.names = append(g.names, fmt.Sprintf("%s.app%d.Element%03d", kinds[i%3], i%7, i))
	}
	for i := range 4 {
		g.hosts = append(g.hosts, fmt.Sprintf("trellis-%d.internal", i))
	}
	return g
}

func (g *rowGen) id() string { return fmt.Sprintf("%016x%016x", g.rng.Uint64(), g.rng.Uint64()) }

func (g *rowGen) kwargs() json.RawMessage {
	note := strings.Repeat("lorem ipsum ", 12+g.rng.IntN(6))
	return json.RawMessage(fmt.Sprintf(`{"userId":%d,"orderId":"ORD-%08d","amount":%d.%02d,"currency":"CNY","items":[{"sku":"SKU-%05d","qty":%d},{"sku":"SKU-%05d","qty":%d}],"channel":"web","note":%q}`,
		g.rng.IntN(1_000_000), g.rng.IntN(100_000_000), g.rng.IntN(10000), g.rng.IntN(100),
		g.rng.IntN(100000), 1+g.rng.IntN(5), g.rng.IntN(100000), 1+g.rng.IntN(5), note))
}

// request appends the rows of one request to out.
func (g *rowGen) request(out []logstore.Row) []logstore.Row {
	req := g.id()
	if len(g.requests) < 10000 || g.rng.IntN(50) == 0 {
		g.requests = append(g.requests, req)
	}
	sender := g.names[g.rng.IntN(len(g.names))]
	var nodes []string
	for i := range 1 + g.rng.IntN(4) {
		g.at = g.at.Add(time.Duration(g.rng.Int64N(int64(2 * g.step))))
		created := g.at.Truncate(time.Millisecond)
		parent := ""
		if i > 0 {
			parent = nodes[g.rng.IntN(len(nodes))]
		}
		node := g.id()
		nodes = append(nodes, node)
		base := logstore.Row{
			Kind: logstore.KindEvent, FullName: g.names[g.rng.IntN(len(g.names))], Sender: sender,
			EventType: "events.NormalType", RequestID: req, NodeID: node, ParentNodeID: parent,
			Attempt: 1, CreatedAt: created, Kwargs: g.kwargs(), Host: g.hosts[g.rng.IntN(len(g.hosts))],
		}
		dur := int64(1 + g.rng.ExpFloat64()*80)
		states := []string{logstore.StatusWaiting, logstore.StatusRunning, logstore.StatusSuccess}
		if g.rng.IntN(5) == 0 {
			states = states[1:] // started at once
		}
		if g.rng.IntN(10) == 0 {
			states[len(states)-1] = logstore.StatusFail
		}
		for seq, st := range states {
			r := base
			r.ID = g.id()
			r.Status = st
			r.Seq = uint32(seq)
			r.RecordedAt = created.Add(time.Duration(seq) * time.Millisecond)
			switch st {
			case logstore.StatusWaiting:
				r.Stage = "queued"
			case logstore.StatusRunning:
				r.StartTime = r.RecordedAt
			default:
				r.StartTime = created
				r.RecordedAt = created.Add(time.Duration(dur) * time.Millisecond)
				r.EndTime = r.RecordedAt
				r.Duration = dur
				r.Result = json.RawMessage(`{"ok":true}`)
				if st == logstore.StatusFail {
					r.Error = &logstore.RowError{Code: "js_error", Message: "TypeError: cannot read property 'id' of undefined", Stack: "at handle (index.js:12:7)"}
				}
			}
			out = append(out, r)
		}
	}
	return out
}

// batch is about n rows (whole requests).
func (g *rowGen) batch(n int) []logstore.Row {
	out := make([]logstore.Row, 0, n+12)
	for len(out) < n {
		out = g.request(out)
	}
	return out
}

// BenchmarkInsert: ingest in batches of about 1,000 rows into a fresh store.
func BenchmarkInsert(b *testing.B) {
	st, err := localstore.Open(b.TempDir(), localstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	g := newRowGen(1, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), 50*time.Millisecond)
	batches := make([][]logstore.Row, 0, 64)
	for range 64 {
		batches = append(batches, g.batch(1000))
	}
	rows := 0
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if i%len(batches) == 0 && i > 0 {
			b.StopTimer()
			for j := range batches {
				batches[j] = g.batch(1000)
			}
			b.StartTimer()
		}
		batch := batches[i%len(batches)]
		if err := st.Insert(b.Context(), batch); err != nil {
			b.Fatal(err)
		}
		rows += len(batch)
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	// The machine is shared: rows per second of this process's CPU says what the store costs
	// when the wall clock is disturbed by others.
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(rows)/cpu.Seconds(), "rows/cpu-s")
	}
}

// The 1M-row store the query benchmarks share, built once per run (BENCH_LOGSTORE_DIR keeps it
// between runs: set it to a directory to build there once and reuse it).
const (
	bigRows  = 1_000_000
	bigDays  = 3
	bigStart = "2030-03-01T00:00:00Z"
)

var big struct {
	once sync.Once
	st   *localstore.Store
	g    *rowGen
	err  error
}

func bigStore(b *testing.B) (*localstore.Store, *rowGen) {
	big.once.Do(func() { big.err = buildBig(b) })
	if big.err != nil {
		b.Fatal(big.err)
	}
	return big.st, big.g
}

func buildBig(b *testing.B) error {
	dir := os.Getenv("BENCH_LOGSTORE_DIR")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "localstore-bench-"); err != nil {
			return err
		}
		benchCleanup = append(benchCleanup, func() { os.RemoveAll(dir) })
	}
	start, _ := time.Parse(time.RFC3339, bigStart)
	// ~2.8 states per node: nodes arrive every step on average over bigDays.
	step := time.Duration(float64(bigDays*24*time.Hour) / (bigRows / 2.8))
	newGen := func() *rowGen { return newRowGen(2, start, step) }
	var err error
	if big.st, err = localstore.Open(dir, localstore.Options{}); err != nil {
		return err
	}
	p, err := big.st.Query(b.Context(), logstore.Query{PageSize: 1})
	if err != nil {
		return err
	}
	big.g = newGen()
	if p.TotalCount > 0 {
		// Built by an earlier run: replay the generator for its request ids.
		for n := 0; n < bigRows; n += len(big.g.batch(1000)) {
		}
		fmt.Printf("localstore bench: reusing %s (%d nodes)\n", dir, p.TotalCount)
		return nil
	}
	began, cpu0 := time.Now(), cpuTime()
	for n := 0; n < bigRows; {
		batch := big.g.batch(1000)
		if err := big.st.Insert(b.Context(), batch); err != nil {
			return err
		}
		n += len(batch)
	}
	took, cpu := time.Since(began), cpuTime()-cpu0
	var size int64
	for _, name := range []string{localstore.FileName, localstore.FileName + "-wal"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil {
			size += fi.Size()
		}
	}
	p, err = big.st.Query(b.Context(), logstore.Query{PageSize: 1})
	if err != nil {
		return err
	}
	fmt.Printf("localstore bench: built %d rows (%d nodes) over %d days in %s: %.0f rows/s, %.0f rows/cpu-s; %d MiB on disk, %.0f bytes/row\n",
		bigRows, p.TotalCount, bigDays, took.Round(time.Millisecond), bigRows/took.Seconds(), bigRows/cpu.Seconds(), size>>20, float64(size)/bigRows)
	return nil
}

var benchCleanup []func()

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
	}
	code := m.Run()
	if big.st != nil {
		big.st.Close()
	}
	for _, f := range benchCleanup {
		f()
	}
	os.Exit(code)
}

// latencies runs fn b.N times and reports p50/p95/p99 in milliseconds.
func latencies(b *testing.B, fn func(i int) error) {
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		if err := fn(i); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	at := func(q float64) float64 {
		return float64(lat[min(int(q*float64(len(lat))), len(lat)-1)]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.95), "p95-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

func benchDay(i int) time.Time {
	start, _ := time.Parse(time.RFC3339, bigStart)
	return start.AddDate(0, 0, i%bigDays)
}

// BenchmarkQueryFirstPage: getEventLog's first page of one element with a status and a one-day
// time filter (target p95 ≤ 250 ms).
func BenchmarkQueryFirstPage(b *testing.B) {
	st, g := bigStore(b)
	statuses := []string{logstore.StatusSuccess, logstore.StatusFail}
	latencies(b, func(i int) error {
		day := benchDay(i)
		_, err := st.Query(b.Context(), logstore.Query{FullName: g.names[i*7%len(g.names)], Status: statuses[i%2], Start: day, End: day.AddDate(0, 0, 1)})
		return err
	})
}

// BenchmarkQueryFirstPageAllElements: the same without the fullName: every element's nodes of a
// status in one day.
func BenchmarkQueryFirstPageAllElements(b *testing.B) {
	st, _ := bigStore(b)
	statuses := []string{logstore.StatusSuccess, logstore.StatusFail}
	latencies(b, func(i int) error {
		day := benchDay(i)
		_, err := st.Query(b.Context(), logstore.Query{Status: statuses[i%2], Start: day, End: day.AddDate(0, 0, 1)})
		return err
	})
}

// BenchmarkQueryKwargs: one element, one day, a kwargs field filter.
func BenchmarkQueryKwargs(b *testing.B) {
	st, g := bigStore(b)
	latencies(b, func(i int) error {
		day := benchDay(i)
		_, err := st.Query(b.Context(), logstore.Query{FullName: g.names[i*7%len(g.names)], Start: day, End: day.AddDate(0, 0, 1), Kwargs: map[string]string{"currency": "CNY", "channel": "web"}})
		return err
	})
}

// BenchmarkByRequest: getEventLogByRequestId (target p95 ≤ 100 ms).
func BenchmarkByRequest(b *testing.B) {
	st, g := bigStore(b)
	latencies(b, func(i int) error {
		rows, err := st.ByRequest(b.Context(), g.requests[(i*7919)%len(g.requests)])
		if err == nil && len(rows) == 0 {
			err = fmt.Errorf("request %s: no rows", g.requests[(i*7919)%len(g.requests)])
		}
		return err
	})
}

// BenchmarkByNode: getEventLogByNodeId from the request's first node.
func BenchmarkByNode(b *testing.B) {
	st, g := bigStore(b)
	roots := make([][2]string, 0, 1000)
	for _, req := range g.requests[:1000] {
		rows, err := st.ByRequest(b.Context(), req)
		if err != nil || len(rows) == 0 {
			b.Fatalf("request %s: %v", req, err)
		}
		roots = append(roots, [2]string{req, rows[0].NodeID})
	}
	latencies(b, func(i int) error {
		r := roots[(i*7919)%len(roots)]
		_, err := st.ByNode(b.Context(), r[0], r[1])
		return err
	})
}

// BenchmarkSummaryDay: the analytics summary of every element over one day (target ≤ 2.5 s).
func BenchmarkSummaryDay(b *testing.B) {
	st, _ := bigStore(b)
	latencies(b, func(i int) error {
		day := benchDay(i)
		_, err := st.Summary(b.Context(), logstore.SummaryQuery{Start: day, End: day.AddDate(0, 0, 1)})
		return err
	})
}

// BenchmarkTimeSeriesDay: one day of every element in 1-minute buckets.
func BenchmarkTimeSeriesDay(b *testing.B) {
	st, _ := bigStore(b)
	latencies(b, func(i int) error {
		day := benchDay(i)
		_, err := st.TimeSeries(b.Context(), logstore.TimeSeriesQuery{Start: day, End: day.AddDate(0, 0, 1), Bucket: time.Minute})
		return err
	})
}
