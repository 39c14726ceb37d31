package writer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/trellis-run/trellis/logstore"
	"github.com/trellis-run/trellis/logstore/chstore"
	"github.com/trellis-run/trellis/logstore/localstore"
)

// The kill -9 tests re-execute this test binary as a helper process (as host/isolate does):
// with envHelper set, TestMain runs helperMain instead of the tests.
const (
	envHelper     = "TRELLIS_WRITER_TEST_HELPER" // "localstore" or "chstore"
	envHelperDir  = "TRELLIS_WRITER_TEST_SPOOL"
	envHelperDB   = "TRELLIS_WRITER_TEST_STORE" // localstore directory, or ClickHouse database
	envHelperName = "TRELLIS_WRITER_TEST_NAME"  // prefix of row IDs and the FullName of rows
	envClickHouse = "TRELLIS_TEST_CLICKHOUSE"
	envLongTests  = "TRELLIS_LONG_TESTS"
)

func TestMain(m *testing.M) {
	if kind := os.Getenv(envHelper); kind != "" {
		os.Exit(helperMain(kind))
	}
	os.Exit(m.Run())
}

// helperWriters is how many goroutines of the helper write at once, each its own ID range.
const helperWriters = 4

// helperMain writes rows through a writer until killed, printing "acked G N" after each Write
// returns (goroutine G has N rows acknowledged: its rows 0…N-1) and "inserted" once the first
// batch reached the store.
func helperMain(kind string) int {
	ctx := context.Background()
	store, err := openBackend(ctx, kind, os.Getenv(envHelperDB))
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 2
	}
	w, err := New(store, Options{
		SpoolDir: os.Getenv(envHelperDir), BatchRows: 2000, FlushInterval: 100 * time.Millisecond,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err == nil {
		err = w.Start(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 2
	}
	name := os.Getenv(envHelperName)
	var out sync.Mutex
	say := func(format string, args ...any) {
		out.Lock()
		defer out.Unlock()
		// One write per line, unbuffered: a line printed is a Write that returned.
		_, _ = io.WriteString(os.Stdout, fmt.Sprintf(format, args...)+"\n")
	}
	go func() {
		for w.Stats().Inserted == 0 {
			time.Sleep(time.Millisecond)
		}
		say("inserted")
	}()
	var wg sync.WaitGroup
	for g := range helperWriters {
		wg.Go(func() {
			for n := 0; ; {
				k := 1 + n%37
				rows := make([]logstore.Row, k)
				for i := range rows {
					rows[i] = streamRow(name, g, n+i)
				}
				if err := w.Write(ctx, rows...); err != nil {
					fmt.Fprintln(os.Stderr, "helper: write:", err)
					os.Exit(3)
				}
				n += k
				say("acked %d %d", g, n)
			}
		})
	}
	wg.Wait()
	return 0
}

// openBackend opens a real store: a localstore in dir, or chstore in database db of the
// server named by TRELLIS_TEST_CLICKHOUSE.
func openBackend(ctx context.Context, kind, where string) (logstore.Store, error) {
	switch kind {
	case "localstore":
		return localstore.Open(where, localstore.Options{})
	case "chstore":
		return chstore.Open(ctx, os.Getenv(envClickHouse), chstore.Options{Database: where})
	}
	return nil, fmt.Errorf("unknown backend %q", kind)
}

// rowsPerNode: stream rows are states of nodes, this many each, so the attempt history of a
// node (Attempts) shows every row of it, and a duplicate would show twice.
const rowsPerNode = 100

// streamRow is row i of writer g in a stream named name: a state of node i/rowsPerNode.
func streamRow(name string, g, i int) logstore.Row {
	node := i / rowsPerNode
	created := base.Add(time.Duration(g*1_000_000+node) * time.Millisecond)
	kw, _ := json.Marshal(map[string]any{
		"writer": g, "row": i, "orderId": fmt.Sprintf("ORD-%010d", i), "email": fmt.Sprintf("user%d@example.com", i),
		"items":   []map[string]any{{"sku": "SKU-1001", "qty": 2, "price": 19.99}, {"sku": "SKU-2002", "qty": 1, "price": 5.5}},
		"address": map[string]string{"street": "221B Baker Street", "city": "London", "zip": "NW1 6XE"},
		"note":    "Deliver between 9am and 5pm; ring twice",
	})
	status := logstore.StatusRunning
	if i%rowsPerNode == rowsPerNode-1 {
		status = logstore.StatusSuccess
	}
	return logstore.Row{
		ID: streamID(name, g, i), Kind: logstore.KindEvent, FullName: "events." + name, Sender: "models.OrderModel",
		EventType: "events.NormalType", Status: status, Stage: "attempt",
		RequestID: fmt.Sprintf("%s-g%d-r%05d", name, g, node/10), NodeID: streamNode(name, g, node),
		Attempt: i%rowsPerNode + 1, CreatedAt: created, RecordedAt: created.Add(time.Duration(i%rowsPerNode) * time.Millisecond),
		Seq: uint32(i % rowsPerNode), StartTime: created, Duration: int64(i % rowsPerNode), Kwargs: kw, Host: "host-" + strconv.Itoa(g),
	}
}

func streamID(name string, g, i int) string   { return fmt.Sprintf("%s-g%d-%08d", name, g, i) }
func streamNode(name string, g, n int) string { return fmt.Sprintf("%s-g%d-n%06d", name, g, n) }
