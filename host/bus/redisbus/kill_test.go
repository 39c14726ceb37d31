package redisbus

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/bus"
)

const (
	helperURL    = "REDISBUS_HELPER_URL"
	helperPrefix = "REDISBUS_HELPER_PREFIX"
)

// TestHelperConsumer is the child of TestKillNineInFlight: a host that takes messages, acks
// every other one, prints each as it settles it, and is killed in the middle.
func TestHelperConsumer(t *testing.T) {
	url := os.Getenv(helperURL)
	if url == "" {
		t.Skip("helper process of TestKillNineInFlight")
	}
	b, err := New(Options{URL: url, Prefix: os.Getenv(helperPrefix)})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	sub, err := b.Subscribe(context.Background(), "t", "g", bus.SubscribeOptions{Consumer: "child", Prefetch: 8, ClaimAfter: time.Second})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	i := 0
	for d := range sub.Deliveries() {
		if i%2 == 0 {
			_ = d.Ack(context.Background())
			fmt.Fprintf(out, "acked %s\n", d.Message().Payload)
		} else {
			fmt.Fprintf(out, "held %s\n", d.Message().Payload) // a handler still running
		}
		_ = out.Flush()
		i++
	}
}

// A host killed with SIGKILL in the middle of its handlers loses no message: another host of
// the group claims what it held after ClaimAfter, and what it had acked is handled again at most
// once more (its acks may not have reached Redis): duplicates are bounded by what was in flight.
func TestKillNineInFlight(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("spawns a process")
	}
	url := redisURL(t)
	prefix := newPrefix(t, url)
	ctx := t.Context()
	survivorBus := newBus(t, testOptions(url, prefix))
	// The group exists before anything is published.
	pre, err := survivorBus.Subscribe(ctx, "t", "g", bus.SubscribeOptions{Consumer: "survivor"})
	require.NoError(t, err)
	require.NoError(t, pre.Close())

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperConsumer$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperURL+"="+url, helperPrefix+"="+prefix)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	const n = 40
	for i := range n {
		_, err := survivorBus.Publish(ctx, "t", &bus.Message{Payload: []byte(fmt.Sprintf("m%d", i))})
		require.NoError(t, err)
	}
	// Let the child settle some messages, then kill it mid-stream.
	childAcked := map[string]bool{}
	held := 0
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && len(childAcked)+held < 10 {
		line := sc.Text()
		require.False(t, strings.HasPrefix(line, "ERR"), line)
		switch verb, payload, _ := strings.Cut(line, " "); verb {
		case "acked":
			childAcked[payload] = true
		case "held":
			held++
		}
	}
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()

	sub, err := survivorBus.Subscribe(ctx, "t", "g", bus.SubscribeOptions{Consumer: "survivor", ClaimAfter: time.Second})
	require.NoError(t, err)
	got := map[string]int{}
	deadline := time.After(30 * time.Second)
	for {
		missing := 0
		for i := range n {
			k := fmt.Sprintf("m%d", i)
			if got[k] == 0 && !childAcked[k] {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		select {
		case d := <-sub.Deliveries():
			got[string(d.Message().Payload)]++
			require.NoError(t, d.Ack(ctx))
		case <-deadline:
			t.Fatalf("%d messages lost after the kill (child acked %d, survivor got %d)", missing, len(childAcked), len(got))
		}
	}
	// Drain what else comes (the child's acks lost in the kill) until the group is empty.
	for empty := false; !empty; {
		select {
		case d := <-sub.Deliveries():
			got[string(d.Message().Payload)]++
			require.NoError(t, d.Ack(ctx))
		case <-time.After(100 * time.Millisecond):
			lags, err := survivorBus.Lag(ctx, "t")
			require.NoError(t, err)
			empty = len(lags) == 1 && lags[0].Pending == 0 && lags[0].Undelivered == 0
		case <-deadline:
			t.Fatal("the group did not empty")
		}
	}
	dup := 0
	for k, c := range got {
		require.Equal(t, 1, c, "the survivor got %s twice", k)
		if childAcked[k] {
			dup++
		}
	}
	// The child held at most Prefetch (8) unsettled; its acks of the last AckInterval may be lost.
	require.LessOrEqual(t, dup, 8, "duplicates beyond what was in flight")
	t.Logf("child acked %d and held %d; survivor handled %d, %d of them again", len(childAcked), held, len(got), dup)
}
