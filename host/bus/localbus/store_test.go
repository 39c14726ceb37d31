package localbus

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/bus"
)

func recv(t *testing.T, sub bus.Subscription) bus.Delivery {
	t.Helper()
	select {
	case d, ok := <-sub.Deliveries():
		require.True(t, ok, "subscription ended")
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery within 10s")
		return nil
	}
}

func publish(t *testing.T, b *Bus, topic string, from, to int) []string {
	t.Helper()
	var ids []string
	for i := from; i < to; i++ {
		got, err := b.Publish(t.Context(), topic, &bus.Message{Payload: []byte(fmt.Sprintf("m%d", i)), Headers: map[string]string{"n": strconv.Itoa(i)}})
		require.NoError(t, err)
		ids = append(ids, got...)
	}
	return ids
}

// logSegments lists the log's segment files, oldest first.
func logSegments(t *testing.T, dir string) []string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, logPrefix+"*"+logSuffix))
	require.NoError(t, err)
	slices.Sort(segs)
	return segs
}

// lastSegment is the newest segment file: the one the last records went to.
func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	segs := logSegments(t, dir)
	require.NotEmpty(t, segs)
	return segs[len(segs)-1]
}

// Close and Open keep messages, groups, cursors, pending deliveries with their counts, and acks.
func TestReopenKeepsState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := open(t, dir, Options{})
	ids := publish(t, b, "t", 0, 6)
	sub, err := b.Subscribe(t.Context(), "t", "g", bus.SubscribeOptions{Consumer: "c", Prefetch: 3})
	require.NoError(t, err)
	d0, d1, d2 := recv(t, sub), recv(t, sub), recv(t, sub)
	require.NoError(t, d0.Ack(t.Context()))
	require.NoError(t, d1.Nack(t.Context()))
	d1 = recv(t, sub) // the nacked message again: delivery 2
	require.Equal(t, ids[1], d1.Message().ID)
	require.Equal(t, 2, d1.Deliveries())
	_ = d2
	other, err := b.Subscribe(t.Context(), "t", "other", bus.SubscribeOptions{Consumer: "c", Start: bus.StartNewest})
	require.NoError(t, err)
	require.NoError(t, other.Close())
	require.NoError(t, b.Close())

	b = open(t, dir, Options{})
	lags, err := b.Lag(t.Context(), "t")
	require.NoError(t, err)
	require.Equal(t, []bus.GroupLag{
		{Group: "g", Pending: 2, Undelivered: 3, Consumers: 1},
		{Group: "other", Pending: 0, Undelivered: 0, Consumers: 0},
	}, lags)
	sub, err = b.Subscribe(t.Context(), "t", "g", bus.SubscribeOptions{Consumer: "c"})
	require.NoError(t, err)
	want := []struct {
		id    string
		count int
	}{{ids[1], 3}, {ids[2], 2}, {ids[3], 1}, {ids[4], 1}, {ids[5], 1}}
	for _, w := range want {
		d := recv(t, sub)
		require.Equal(t, w.id, d.Message().ID)
		require.Equal(t, w.count, d.Deliveries(), "message %s", w.id)
		require.Equal(t, map[string]string{"n": strings.TrimPrefix(string(d.Message().Payload), "m")}, d.Message().Headers)
		require.NoError(t, d.Ack(t.Context()))
	}
	more := publish(t, b, "t", 6, 7)
	require.NotContains(t, ids, more[0], "sequence numbers go on after a reopen")
}

// A torn tail (a crash in the middle of a write) is cut off; everything before it stays.
func TestTornTail(t *testing.T) {
	t.Parallel()
	for _, cut := range []int{1, 3, 7, 9, 18} { // the last record is 23 bytes long
		t.Run(strconv.Itoa(cut), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			b := open(t, dir, Options{})
			ids := publish(t, b, "t", 0, 5)
			require.NoError(t, b.Close())
			path := lastSegment(t, dir)
			st, err := os.Stat(path)
			require.NoError(t, err)
			// The last record is message 4 (its Publish was the last write); cut into it.
			require.NoError(t, os.Truncate(path, st.Size()-int64(cut)))

			b = open(t, dir, Options{})
			n, err := b.Len(t.Context(), "t")
			require.NoError(t, err)
			require.Equal(t, int64(4), n, "the torn message is gone, the others stay")
			sub, err := b.Subscribe(t.Context(), "t", "g", bus.SubscribeOptions{Consumer: "c"})
			require.NoError(t, err)
			for _, id := range ids[:4] {
				d := recv(t, sub)
				require.Equal(t, id, d.Message().ID)
				require.NoError(t, d.Ack(t.Context()))
			}
			// New records go after the cut, and survive the next reopen.
			again := publish(t, b, "t", 9, 10)
			require.Equal(t, ids[4], again[0], "the torn message's sequence is free again")
			require.NoError(t, b.Close())
			b = open(t, dir, Options{})
			n, err = b.Len(t.Context(), "t")
			require.NoError(t, err)
			require.Equal(t, int64(5), n)
		})
	}
}

// Garbage after the last record (a torn frame header, zeros of a preallocated block) is cut off.
func TestGarbageTail(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := open(t, dir, Options{})
	publish(t, b, "t", 0, 3)
	require.NoError(t, b.Close())
	f, err := os.OpenFile(lastSegment(t, dir), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.Write(append(make([]byte, 100), 0xde, 0xad, 0xbe, 0xef, 1, 2, 3))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	b = open(t, dir, Options{})
	n, err := b.Len(t.Context(), "t")
	require.NoError(t, err)
	require.Equal(t, int64(3), n)
}

// A file that is not a bus log is refused, and left as it is.
func TestNotALog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, legacyName)
	require.NoError(t, os.WriteFile(path, []byte("something else entirely\n"), 0o600))
	_, err := Open(dir, Options{})
	require.ErrorIs(t, err, ErrCorrupt)
	require.Contains(t, err.Error(), "move it aside")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "something else entirely\n", string(data))
	// The lock was released with the failure.
	b := open(t, t.TempDir(), Options{})
	require.NoError(t, b.Close())
}

// One directory, one bus.
func TestLocked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := open(t, dir, Options{})
	_, err := Open(dir, Options{})
	require.ErrorIs(t, err, ErrLocked)
	require.NoError(t, b.Close())
	b2 := open(t, dir, Options{})
	require.NoError(t, b2.Close())
}

func TestOptions(t *testing.T) {
	t.Parallel()
	for _, o := range []Options{{CompactBytes: 10}, {MaxBacklogBytes: 10}, {DefaultClaimAfter: -time.Second}} {
		_, err := Open(t.TempDir(), o)
		require.ErrorIs(t, err, ErrInvalidOptions, "%+v", o)
	}
	_, err := Open("", Options{})
	require.ErrorIs(t, err, ErrInvalidOptions)
}

// The log is rewritten as a snapshot once it has grown well past the live data; the snapshot
// reopens to the same state.
func TestCompaction(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opts := Options{CompactBytes: 64 << 10, TrimInterval: 5 * time.Millisecond}
	b := open(t, dir, opts)
	sub, err := b.Subscribe(t.Context(), "t", "g", bus.SubscribeOptions{Consumer: "c", Prefetch: 1})
	require.NoError(t, err)
	payload := strings.Repeat("x", 500)
	for i := range 1000 {
		_, err := b.Publish(t.Context(), "t", &bus.Message{Payload: []byte(payload), Headers: map[string]string{"n": strconv.Itoa(i)}})
		require.NoError(t, err)
		require.NoError(t, recv(t, sub).Ack(t.Context()))
	}
	keep := publish(t, b, "t", 0, 3) // left undelivered
	held := recv(t, sub)             // left pending
	require.Equal(t, keep[0], held.Message().ID)
	require.Eventually(t, func() bool { return b.alog.Stats().Rewrites > 0 }, 10*time.Second, 5*time.Millisecond, "no compaction")
	require.NoError(t, b.Close())
	var size int64
	for _, seg := range logSegments(t, dir) {
		st, err := os.Stat(seg)
		require.NoError(t, err)
		size += st.Size()
	}
	require.Less(t, size, int64(3*(64<<10)), "the log was compacted (1000 acked messages of 500 bytes were written)")

	b = open(t, dir, opts)
	lags, err := b.Lag(t.Context(), "t")
	require.NoError(t, err)
	require.Equal(t, []bus.GroupLag{{Group: "g", Pending: 1, Undelivered: 2, Consumers: 1}}, lags)
	sub, err = b.Subscribe(t.Context(), "t", "g", bus.SubscribeOptions{Consumer: "c"})
	require.NoError(t, err)
	for i, id := range keep {
		d := recv(t, sub)
		require.Equal(t, id, d.Message().ID)
		require.Equal(t, fmt.Sprintf("m%d", i), string(d.Message().Payload))
		require.NoError(t, d.Ack(t.Context()))
	}
}

// Publish fails clearly, never silently, when the backlog is full, and works again once
// consumers catch up.
func TestBacklogFull(t *testing.T) {
	t.Parallel()
	b := open(t, t.TempDir(), Options{MaxBacklogBytes: 4096, TrimInterval: -1})
	sub, err := b.Subscribe(t.Context(), "t", "g", bus.SubscribeOptions{Consumer: "c", Prefetch: 100})
	require.NoError(t, err)
	big := &bus.Message{Payload: make([]byte, 1000)}
	n := 0
	for ; ; n++ {
		_, err = b.Publish(t.Context(), "t", big)
		if err != nil {
			break
		}
		require.Less(t, n, 10)
	}
	require.ErrorIs(t, err, ErrBacklogFull)
	require.ErrorIs(t, err, bus.ErrUnavailable)
	for range n {
		require.NoError(t, recv(t, sub).Ack(t.Context()))
	}
	removed, err := b.Trim(t.Context(), "t")
	require.NoError(t, err)
	require.Equal(t, int64(n), removed)
	_, err = b.Publish(t.Context(), "t", big)
	require.NoError(t, err)
}

// A write failure makes the bus refuse writes with bus.ErrUnavailable instead of pretending.
func TestWriteFailure(t *testing.T) {
	t.Parallel()
	b := open(t, t.TempDir(), Options{})
	publish(t, b, "t", 0, 1)
	b.alog.FailCommits(errors.New("disk failed")) // every later write fails
	_, err := b.Publish(t.Context(), "t", &bus.Message{Payload: []byte("x")})
	require.ErrorIs(t, err, bus.ErrUnavailable)
	require.ErrorIs(t, err, ErrIO)
	_, err = b.Publish(t.Context(), "t", &bus.Message{Payload: []byte("y")})
	require.ErrorIs(t, err, bus.ErrUnavailable, "the failure is sticky")
	_, err = b.Subscribe(t.Context(), "t", "g", bus.SubscribeOptions{Consumer: "c"})
	require.ErrorIs(t, err, bus.ErrUnavailable)
	require.Error(t, b.Close(), "Close reports the earlier failure")
}

const helperEnv = "LOCALBUS_HELPER_DIR"

// TestHelperPublisher is the child of TestKillNine: it publishes until killed, printing the
// IDs Publish acknowledged.
func TestHelperPublisher(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("helper process of TestKillNine")
	}
	b, err := Open(dir, Options{})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	// Group "audit" exists but never reads: after the kill it must hold every acknowledged
	// message.
	audit, err := b.Subscribe(context.Background(), "t", "audit", bus.SubscribeOptions{Consumer: "child"})
	if err == nil {
		err = audit.Close()
	}
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	sub, err := b.Subscribe(context.Background(), "t", "g", bus.SubscribeOptions{Consumer: "child"})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	go func() { // acks half of what it gets, so the log holds acks and deliveries too
		i := 0
		for d := range sub.Deliveries() {
			if i%2 == 0 {
				_ = d.Ack(context.Background())
			}
			i++
		}
	}()
	out := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		ids, err := b.Publish(context.Background(), "t", &bus.Message{Payload: []byte(fmt.Sprintf("m%d", i))})
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(2)
		}
		fmt.Fprintf(out, "%s m%d\n", ids[0], i)
		_ = out.Flush()
	}
}

// A process killed with SIGKILL in the middle of publishing loses no acknowledged message, and
// its directory opens again.
func TestKillNine(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("spawns a process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperPublisher$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	acked := map[string]string{}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		require.False(t, strings.HasPrefix(line, "ERR"), line)
		id, payload, ok := strings.Cut(line, " ")
		if !ok {
			continue // test framework output
		}
		acked[id] = payload
		if len(acked) == 300 {
			require.NoError(t, cmd.Process.Kill())
			break
		}
	}
	_ = cmd.Wait()

	b := open(t, dir, Options{})
	lags, err := b.Lag(t.Context(), "t")
	require.NoError(t, err)
	require.Len(t, lags, 2)
	require.Equal(t, "audit", lags[0].Group)
	require.GreaterOrEqual(t, lags[0].Undelivered, int64(len(acked)), "group audit lost messages")
	sub, err := b.Subscribe(t.Context(), "t", "audit", bus.SubscribeOptions{Consumer: "parent", Prefetch: 1000})
	require.NoError(t, err)
	got := map[string]string{}
	for range lags[0].Undelivered {
		d := recv(t, sub)
		got[d.Message().ID] = string(d.Message().Payload)
		require.NoError(t, d.Ack(t.Context()))
	}
	for id, payload := range acked {
		require.Equal(t, payload, got[id], "acknowledged message %s lost or changed in the kill", id)
	}
	// Group g goes on where the child left off: what it had not acked comes again.
	g, err := b.Subscribe(t.Context(), "t", "g", bus.SubscribeOptions{Consumer: "child", Prefetch: 1000})
	require.NoError(t, err)
	for range lags[1].Pending + lags[1].Undelivered {
		require.NoError(t, recv(t, g).Ack(t.Context()))
	}
	last, err := strconv.ParseUint(maxID(acked), 10, 64)
	require.NoError(t, err)
	ids := publish(t, b, "t", 0, 1)
	seq, err := strconv.ParseUint(ids[0], 10, 64)
	require.NoError(t, err)
	require.Greater(t, seq, last, "an acknowledged message's sequence was reused")
}

func maxID(m map[string]string) string {
	best := ""
	for id := range m {
		if best == "" || less(best, id) {
			best = id
		}
	}
	return best
}

func less(a, b string) bool {
	x, _ := strconv.ParseUint(a, 10, 64)
	y, _ := strconv.ParseUint(b, 10, 64)
	return x < y
}
