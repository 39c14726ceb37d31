//go:build unix

package writer

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/logstore"
	"github.com/trellis-run/trellis/logstore/chstore"
	"github.com/trellis-run/trellis/logstore/localstore"
)

// Process-level tests against real backends: kill -9 of a process writing through the writer
// (localstore always; ClickHouse when TRELLIS_TEST_CLICKHOUSE is set), and a ClickHouse outage
// made with a TCP proxy of the test's own, so the shared server is never stopped.

func randomName(t testing.TB, prefix string) string {
	t.Helper()
	var b [5]byte
	_, err := rand.Read(b[:])
	require.NoError(t, err)
	return prefix + hex.EncodeToString(b[:])
}

// clickHouse returns the test server's DSN and a raw connection, or skips, saying how to run.
func clickHouse(t testing.TB) (string, driver.Conn) {
	t.Helper()
	dsn := os.Getenv(envClickHouse)
	if dsn == "" {
		t.Skipf(`%s is not set: run eval "$(scripts/services.sh start)" to test the writer against a real ClickHouse (docs/backends.md)`, envClickHouse)
	}
	opts, err := clickhouse.ParseDSN(dsn)
	require.NoError(t, err)
	conn, err := clickhouse.Open(opts)
	require.NoError(t, err)
	require.NoError(t, conn.Ping(context.Background()), "ClickHouse at %s is not answering; run scripts/services.sh start", dsn)
	t.Cleanup(func() { _ = conn.Close() })
	return dsn, conn
}

// chDatabase is a database of this test's own, dropped at its end.
func chDatabase(t testing.TB, conn driver.Conn) string {
	t.Helper()
	db := randomName(t, "trellis_test_writer_")
	t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) })
	return db
}

// verifyStream checks through the store's own queries that every acknowledged row of the
// stream is stored exactly once: the attempt history of each node holds each of its
// acknowledged rows, and no row twice. acked[g] rows of writer g (its rows 0…acked[g]-1) were
// acknowledged; rows after them may or may not be stored (written, never acknowledged).
func verifyStream(t *testing.T, store logstore.Store, name string, acked []int) {
	t.Helper()
	type job struct{ g, node int }
	jobs := make(chan job)
	var mu sync.Mutex
	var problems []string
	report := func(format string, args ...any) {
		mu.Lock()
		problems = append(problems, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for j := range jobs {
				nodeID := streamNode(name, j.g, j.node)
				rows, err := store.Attempts(context.Background(), nodeID)
				if err != nil {
					report("attempts %s: %v", nodeID, err)
					continue
				}
				seen := map[string]bool{}
				for _, r := range rows {
					if seen[r.ID] {
						report("row %s stored twice", r.ID)
					}
					seen[r.ID] = true
				}
				for i := j.node * rowsPerNode; i < min(acked[j.g], (j.node+1)*rowsPerNode); i++ {
					if !seen[streamID(name, j.g, i)] {
						report("acknowledged row %s lost", streamID(name, j.g, i))
					}
				}
			}
		})
	}
	total, nodes := 0, 0
	for g, n := range acked {
		total += n
		for node := 0; node*rowsPerNode < n; node++ {
			jobs <- job{g, node}
			nodes++
		}
	}
	close(jobs)
	wg.Wait()
	if len(problems) > 10 {
		problems = append(problems[:10], fmt.Sprintf("… and %d more", len(problems)-10))
	}
	require.Empty(t, problems, "of %d acknowledged rows", total)
	page, err := store.Query(context.Background(), logstore.Query{FullName: "events." + name, PageSize: 1})
	require.NoError(t, err)
	// Each writer may have one more node, begun by a Write that was never acknowledged.
	require.GreaterOrEqual(t, page.TotalCount, int64(nodes))
	require.LessOrEqual(t, page.TotalCount, int64(nodes+len(acked)))
	t.Logf("verified %d acknowledged rows in %d nodes: each stored exactly once", total, nodes)
}

// testKill9 runs a helper process writing through a writer into a real backend, kills it with
// SIGKILL after killAt rows were acknowledged and some inserted, then starts a new writer on
// the same spool and checks every acknowledged row is stored exactly once.
func testKill9(t *testing.T, kind, where string, killAt int) {
	spool := t.TempDir()
	name := randomName(t, "Kill")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envHelper+"="+kind, envHelperDir+"="+spool, envHelperDB+"="+where, envHelperName+"="+name)
	stderr := &logBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	var timedOut bool
	guard := time.AfterFunc(2*time.Minute, func() { timedOut = true; _ = cmd.Process.Kill() })
	defer guard.Stop()

	acked := make([]int, helperWriters)
	inserted, killed := false, false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "inserted":
			inserted = true
		case strings.HasPrefix(line, "acked "):
			f := strings.Fields(line)
			require.Len(t, f, 3, line)
			g, err1 := strconv.Atoi(f[1])
			n, err2 := strconv.Atoi(f[2])
			require.NoError(t, err1)
			require.NoError(t, err2)
			acked[g] = max(acked[g], n)
		}
		if !killed && inserted && sum(acked) >= killAt {
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			killed = true
		}
	}
	// Lines read after the kill were printed before it: they are acknowledged too.
	err = cmd.Wait()
	require.False(t, timedOut, "the helper did not reach %d acknowledged rows in time; stderr:\n%s", killAt, stderr)
	require.True(t, killed, "the helper exited by itself (%v); stderr:\n%s", err, stderr)
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	require.True(t, ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL, "helper ended with %v", err)

	store, err := openBackend(context.Background(), kind, where)
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	logs := &logBuffer{}
	w, err := New(store, Options{SpoolDir: spool, Logger: slogTo(logs)})
	require.NoError(t, err)
	require.NoError(t, w.Start(context.Background()))
	replayed := w.Stats().Replayed
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, w.Flush(ctx))
	require.NoError(t, w.Stop(ctx))
	t.Logf("killed after %d rows acknowledged; the new writer replayed %d spooled rows", sum(acked), replayed)
	require.Positive(t, replayed, "the helper was killed with rows in flight")
	verifyStream(t, store, name, acked)
}

func sum(xs []int) int {
	s := 0
	for _, x := range xs {
		s += x
	}
	return s
}

func TestKill9Localstore(t *testing.T) {
	t.Parallel()
	testKill9(t, "localstore", t.TempDir(), 3000)
}

func TestKill9ClickHouse(t *testing.T) {
	t.Parallel()
	_, conn := clickHouse(t)
	testKill9(t, "chstore", chDatabase(t, conn), 20000)
}

// cutProxy forwards TCP to ClickHouse for the writer's store only. down refuses connections
// (the listener is closed, the port answers RST); hang accepts them and never answers (a
// partition); both first drop every open connection.
type cutProxy struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	l      net.Listener
	mode   string
	conns  map[net.Conn]bool
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	p := &cutProxy{t: t, target: target, conns: map[net.Conn]bool{}, mode: "up"}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p.addr, p.l = l.Addr().String(), l
	go p.accept(l)
	t.Cleanup(func() { p.set("down") })
	return p
}

func (p *cutProxy) accept(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		mode := p.mode
		p.conns[c] = true
		p.mu.Unlock()
		if mode != "up" {
			continue // hang: hold it, answer nothing
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[up] = true
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
		go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
	}
}

// set switches to "up", "hang" or "down".
func (p *cutProxy) set(mode string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if mode != "up" {
		for c := range p.conns {
			_ = c.Close()
		}
		clear(p.conns)
	}
	switch {
	case mode == "down" && p.l != nil:
		_ = p.l.Close()
		p.l = nil
	case mode != "down" && p.l == nil:
		l, err := net.Listen("tcp", p.addr) // Go sets SO_REUSEADDR: the same port comes back
		require.NoError(p.t, err)
		p.l = l
		go p.accept(l)
	}
	p.mode = mode
}

// outageDuration is how long the outage test keeps ClickHouse unreachable: the 60 s
// with TRELLIS_LONG_TESTS=1, a few seconds otherwise so CI stays fast.
func outageDuration() time.Duration {
	if os.Getenv(envLongTests) == "1" {
		return 60 * time.Second
	}
	return 3 * time.Second
}

func TestClickHouseOutage(t *testing.T) {
	t.Parallel()
	dsn, conn := clickHouse(t)
	db := chDatabase(t, conn)
	opts, err := clickhouse.ParseDSN(dsn)
	require.NoError(t, err)
	p := newCutProxy(t, opts.Addr[0])
	ctx := context.Background()
	store, err := chstore.Open(ctx, "clickhouse://"+p.addr+"/default",
		chstore.Options{Database: db, DialTimeout: time.Second, ReadTimeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	logs := &logBuffer{}
	w, err := New(store, Options{SpoolDir: t.TempDir(), BatchRows: 5000, FlushInterval: 100 * time.Millisecond,
		BackoffMin: 50 * time.Millisecond, BackoffMax: time.Second, InsertTimeout: 3 * time.Second, Logger: slogTo(logs)})
	require.NoError(t, err)
	require.NoError(t, w.Start(ctx))
	t.Cleanup(func() { _ = w.Stop(ctx) })

	// Writers go on at a steady pace through the whole outage.
	name := randomName(t, "Outage")
	acked := make([]int, helperWriters)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range helperWriters {
		wg.Go(func() {
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for n := 0; ; {
				select {
				case <-stop:
					acked[g] = n
					return
				case <-tick.C:
				}
				k := 1 + n%37
				rows := make([]logstore.Row, k)
				for i := range rows {
					rows[i] = streamRow(name, g, n+i)
				}
				if err := w.Write(ctx, rows...); err != nil {
					t.Errorf("write during the outage: %v", err)
					acked[g] = n
					return
				}
				n += k
			}
		})
	}
	require.Eventually(t, func() bool { return w.Stats().Inserted > 0 }, 30*time.Second, 5*time.Millisecond)

	outage := outageDuration()
	p.set("hang") // first a partition: inserts time out
	time.Sleep(outage / 3)
	p.set("down") // then the server is gone: connections are refused
	time.Sleep(outage - outage/3)
	during := w.Stats()
	require.True(t, during.Retrying, "inserts fail during the outage")
	require.Positive(t, during.Retries)
	require.Positive(t, during.SpooledRows, "rows wait in the spool")
	require.NotEmpty(t, during.LastError)
	t.Logf("after a %v outage: %d rows spooled, %d retries, last error: %s", outage, during.SpooledRows, during.Retries, during.LastError)

	p.set("up")
	require.Eventually(t, func() bool { return !w.Stats().Retrying && w.Stats().Inserted > during.Inserted },
		30*time.Second, 5*time.Millisecond, "inserts resume once ClickHouse is reachable")
	close(stop)
	wg.Wait()
	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	require.NoError(t, w.Flush(fctx))
	require.NoError(t, w.Stop(fctx))
	require.Contains(t, logs.String(), "store accepts inserts again")
	verifyStream(t, store, name, acked)
}

// TestLocalstoreEndToEnd runs the writer into the embedded store with faults injected in
// between: the real store's idempotency makes the retried batch harmless.
func TestLocalstoreEndToEnd(t *testing.T) {
	t.Parallel()
	store, err := localstore.Open(t.TempDir(), localstore.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	fault := newFaultStore(store)
	w, err := New(fault, Options{SpoolDir: t.TempDir(), BatchRows: 300, FlushInterval: 10 * time.Millisecond,
		BackoffMin: time.Millisecond, BackoffMax: 10 * time.Millisecond, Logger: slogTo(&logBuffer{})})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, w.Start(ctx))
	t.Cleanup(func() { _ = w.Stop(ctx) })

	name := randomName(t, "Local")
	fault.failSecretly(2)
	n := 0
	for ; n < 1000; n += 10 {
		rows := make([]logstore.Row, 10)
		for i := range rows {
			rows[i] = streamRow(name, 0, n+i)
		}
		require.NoError(t, w.Write(ctx, rows...))
		if n == 500 {
			fault.setDown(true)
		}
	}
	fault.waitFailures(t, 3)
	fault.setDown(false)
	require.NoError(t, w.Flush(ctx))
	require.GreaterOrEqual(t, w.Stats().Retries, int64(3))
	verifyStream(t, store, name, []int{n})
}
