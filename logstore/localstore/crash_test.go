package localstore_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/logstore"
	"github.com/trellis-run/trellis/logstore/localstore"
)

// crashChildEnv makes the test binary a child that inserts batches into the directory it names
// and prints "acked N" after each Insert returns, until it is killed.
const crashChildEnv = "LOCALSTORE_CRASH_CHILD_DIR"

const crashBatchNodes = 50

func crashBatch(n int) []logstore.Row {
	created := time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Second)
	rows := make([]logstore.Row, 0, 2*crashBatchNodes)
	for i := range crashBatchNodes {
		node := fmt.Sprintf("b%d-n%d", n, i)
		r := row(node+"#0", node, fmt.Sprintf("b%d", n), logstore.StatusRunning, created, 0)
		r.Kwargs = []byte(fmt.Sprintf(`{"batch":%d,"pad":%q}`, n, strings.Repeat("x", 300)))
		done := r
		done.ID, done.Status, done.RecordedAt, done.Seq = node+"#1", logstore.StatusSuccess, created.Add(time.Millisecond), 1
		rows = append(rows, r, done)
	}
	return rows
}

// crashChild runs in the child process; it never returns normally.
func crashChild(dir string) {
	st, err := localstore.Open(dir, localstore.Options{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	ctx := context.Background()
	for n := 0; ; n++ {
		if err := st.Insert(ctx, crashBatch(n)); err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		fmt.Println("acked", n)
	}
}

// A process killed with SIGKILL while inserting loses no acknowledged batch, and every batch is
// there whole or not at all.
func TestKilledWhileInserting(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "-test.run", "^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	// Read every line as it comes, so the child never waits on a full pipe: it is killed in the
	// middle of whatever it is doing, most likely an Insert.
	acks := make(chan int, 1024)
	bad := make(chan string, 1)
	go func() {
		defer close(acks)
		lines := bufio.NewScanner(out)
		for lines.Scan() {
			f := strings.Fields(lines.Text())
			n, err := strconv.Atoi(f[len(f)-1])
			if f[0] != "acked" || err != nil {
				bad <- lines.Text()
				return
			}
			acks <- n
		}
	}()
	acked := -1
	for n := range acks {
		acked = n
		if acked >= 30 {
			break
		}
	}
	require.GreaterOrEqual(t, acked, 30, "child stopped early")
	require.NoError(t, cmd.Process.Kill()) // SIGKILL on Unix: no deferred code, no Close
	for n := range acks {                  // acknowledged before the kill landed
		acked = n
	}
	_ = cmd.Wait()
	select {
	case line := <-bad:
		t.Fatalf("child: %s", line)
	default:
	}

	st := open(t, dir)
	ctx := t.Context()
	whole := 0
	for n := 0; ; n++ {
		rows, err := st.ByRequest(ctx, fmt.Sprintf("b%d", n))
		require.NoError(t, err)
		if n <= acked {
			require.Len(t, rows, crashBatchNodes, "acknowledged batch %d", n)
		}
		if len(rows) == 0 {
			break
		}
		require.Len(t, rows, crashBatchNodes, "batch %d is partial", n)
		for _, r := range rows {
			require.Equal(t, logstore.StatusSuccess, r.Status)
		}
		whole++
	}
	p, err := st.Query(ctx, logstore.Query{FullName: "events.Persist", PageSize: 1})
	require.NoError(t, err)
	require.EqualValues(t, whole*crashBatchNodes, p.TotalCount)
	t.Logf("killed after %d acknowledged batches; %d batches stored", acked+1, whole)
}

// Retention deletes in chunks (of 20 nodes here); nodes sharing one created_at across a chunk
// boundary still all go, and the day asked for stays.
func TestDropBeforeInChunks(t *testing.T) {
	t.Parallel()
	st := open(t, t.TempDir())
	localstore.SetDropChunk(st, 20)
	ctx := t.Context()
	day := time.Date(2030, 7, 1, 0, 0, 0, 0, time.UTC)
	var rows []logstore.Row
	for i := range 45 {
		rows = append(rows, row(fmt.Sprintf("same%d", i), fmt.Sprintf("same%d", i), "drop-same", logstore.StatusSuccess, day.Add(12*time.Hour), 0))
		rows = append(rows, row(fmt.Sprintf("day2-%d", i), fmt.Sprintf("day2-%d", i), "drop-day2", logstore.StatusSuccess, day.Add(24*time.Hour+time.Duration(i)*time.Second), 0))
	}
	for i := range 10 {
		rows = append(rows, row(fmt.Sprintf("day3-%d", i), fmt.Sprintf("day3-%d", i), "drop-day3", logstore.StatusSuccess, day.Add(48*time.Hour+time.Duration(i)*time.Minute), 0))
	}
	require.NoError(t, st.Insert(ctx, rows))
	require.NoError(t, st.DropBefore(ctx, day.Add(48*time.Hour)))
	p, err := st.Query(ctx, logstore.Query{FullName: "events.Persist", PageSize: 1})
	require.NoError(t, err)
	require.EqualValues(t, 10, p.TotalCount)
	for req, want := range map[string]int{"drop-same": 0, "drop-day2": 0, "drop-day3": 10} {
		got, err := st.ByRequest(ctx, req)
		require.NoError(t, err)
		require.Len(t, got, want, req)
	}
	att, err := st.Attempts(ctx, "same7")
	require.NoError(t, err)
	require.Empty(t, att)
}
