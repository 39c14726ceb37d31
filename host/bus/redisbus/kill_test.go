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

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/bus"
)

const (
	helperURL    = "REDISBUS_HELPER_URL"
	helperPrefix = "REDISBUS_HELPER_PREFIX"
)

// TestHelperConsumer is the child of TestKillNineInFlight: a host that takes messages, acks
// every other one, prints each as it settles it, and is killed in the middle. It prints
// "acking" before it acks, so that the parent knows of every ack that may have reached Redis:
// printed after, an ack could reach Redis (AckInterval later, from the flusher) while the line
// was never written.
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
	sub, err := b.Subscribe(context.Background(), "t", "g", bus.SubscribeOptions{Consumer: "child", Prefetch: childPrefetch, ClaimAfter: time.Second})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	i := 0
	for d := range sub.Deliveries() {
		if i%2 == 0 {
			fmt.Fprintf(out, "acking %s\n", d.Message().Payload)
			_ = out.Flush()
			_ = d.Ack(context.Background())
		} else {
			fmt.Fprintf(out, "held %s\n", d.Message().Payload) // a handler still running
			_ = out.Flush()
		}
		i++
	}
}

// childPrefetch: the child holds every other message unsettled, so it stops taking messages
// after 2*childPrefetch of them (childPrefetch acked, childPrefetch held).
const childPrefetch = 8

// A host killed with SIGKILL in the middle of its handlers loses no message: another host of
// the group claims what it held after ClaimAfter, and what it had acked is handled again at most
// once more (its acks may not have reached Redis): duplicates are bounded by what was in flight.
//
// The child keeps acking between the parent's decision to kill it and its death, and those
// acks reach Redis when the kill comes later than AckInterval (a loaded machine): the parent
// reads the child's whole output after the kill and counts each of them as acked. "kill late"
// makes that deterministic: the child is killed only once all of its acks are in Redis.
func TestKillNineInFlight(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("spawns a process")
	}
	for _, tc := range []struct {
		name string
		late bool
	}{{"kill at once", false}, {"kill late", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			killNineInFlight(t, tc.late)
		})
	}
}

func killNineInFlight(t *testing.T, late bool) {
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
	// childAcked holds every message the child acked or was about to ack: its ack may or may not
	// have reached Redis, so the survivor may or may not get it again.
	childAcked := map[string]bool{}
	held := 0
	sc := bufio.NewScanner(stdout)
	read := func() bool {
		if !sc.Scan() {
			return false
		}
		line := sc.Text()
		require.False(t, strings.HasPrefix(line, "ERR"), line)
		switch verb, payload, _ := strings.Cut(line, " "); verb {
		case "acking":
			childAcked[payload] = true
		case "held":
			held++
		}
		return true
	}
	// Let the child settle some messages, then kill it mid-stream.
	for len(childAcked)+held < 10 && read() {
	}
	if late {
		// The child stops at childPrefetch held messages; kill it once its acks are in Redis and
		// only the held ones are pending on it.
		for held < childPrefetch && read() {
		}
		c := client(t, url)
		require.Eventually(t, func() bool {
			p, err := c.XPending(ctx, prefix+"t", "g").Result()
			return err == nil && p.Count == childPrefetch && p.Consumers["child"] == childPrefetch
		}, 30*time.Second, 10*time.Millisecond, "the child's acks reach Redis")
	}
	require.NoError(t, cmd.Process.Kill())
	// What the child wrote before it died is in the pipe: read it to the end.
	for read() {
	}
	_ = cmd.Wait()
	if late {
		require.Len(t, childAcked, childPrefetch)
	}

	sub, err := survivorBus.Subscribe(ctx, "t", "g", bus.SubscribeOptions{Consumer: "survivor", ClaimAfter: time.Second})
	require.NoError(t, err)
	got := map[string]int{}
	// The survivor claims the child's entries once they are idle for ClaimAfter (1s), at a claim
	// round every ClaimAfter/2: a few seconds; the rest is room for a loaded machine.
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
			t.Fatalf("%d messages lost after the kill (child acked %d, survivor got %d); %s",
				missing, len(childAcked), len(got), whereAre(t, url, prefix+"t", "g", n, got, childAcked))
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
	if late {
		require.Zero(t, dup, "the child's acks were in Redis before the kill")
	}
	// The child held at most Prefetch unsettled; its acks of the last AckInterval may be lost.
	require.LessOrEqual(t, dup, childPrefetch, "duplicates beyond what was in flight")
	t.Logf("child acked %d and held %d; survivor handled %d, %d of them again", len(childAcked), held, len(got), dup)
}

// whereAre says where the messages the survivor is missing sit in Redis: pending on which
// consumer, still on the stream, or gone (acked and trimmed).
func whereAre(t *testing.T, url, key, group string, n int, got map[string]int, childAcked map[string]bool) string {
	c := client(t, url)
	ctx := context.Background()
	entries, err := c.XRange(ctx, key, "-", "+").Result()
	if err != nil {
		return err.Error()
	}
	ids := map[string]string{}
	for _, e := range entries {
		p, _ := e.Values[fieldPayload].(string)
		ids[p] = e.ID
	}
	pend, err := c.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: key, Group: group, Start: "-", End: "+", Count: int64(n)}).Result()
	if err != nil {
		return err.Error()
	}
	owner := map[string]string{}
	for _, p := range pend {
		owner[p.ID] = fmt.Sprintf("pending on %s, idle %s, %d deliveries", p.Consumer, p.Idle, p.RetryCount)
	}
	var b strings.Builder
	for i := range n {
		k := fmt.Sprintf("m%d", i)
		if got[k] > 0 || childAcked[k] {
			continue
		}
		switch id, ok := ids[k]; {
		case !ok:
			fmt.Fprintf(&b, "%s: not on the stream (acked and trimmed); ", k)
		case owner[id] != "":
			fmt.Fprintf(&b, "%s: %s; ", k, owner[id])
		default:
			fmt.Fprintf(&b, "%s: on the stream, not pending (undelivered or acked); ", k)
		}
	}
	groups, _ := c.XInfoGroups(ctx, key).Result()
	fmt.Fprintf(&b, "groups: %+v", groups)
	return b.String()
}
