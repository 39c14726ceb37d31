package logstoretest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/logstore"
)

// callTree inserts one request's tree, children's rows before their parents':
//
//	root ─┬─ a ─┬─ b ── c
//	      │     └─ b2
//	      └─ s ── s1
//
// plus a node of another request. It returns the nodes by short name.
func callTree(e *env, req string) map[string]logstore.Row {
	day := e.days(1)
	fn := e.name("events.Tree")
	at := func(m int) time.Time { return day.Add(8*time.Hour + time.Duration(m)*time.Minute) }
	n := map[string]logstore.Row{}
	add := func(name, parent string, created time.Time) {
		p := ""
		if parent != "" {
			p = n[parent].NodeID
		}
		n[name] = e.node(fn, req, e.name(name), p, created)
	}
	add("root", "", at(0))
	add("a", "root", at(1))
	add("s", "root", at(1)) // same CreatedAt as a: NodeID breaks the tie
	add("b", "a", at(2))
	add("b2", "a", at(3))
	add("s1", "s", at(3))
	add("c", "b", at(4))
	other := e.node(fn, req+"-other", e.name("other"), n["a"].NodeID, at(2))
	for _, name := range []string{"c", "s1", "b2", "b", "s", "a", "root"} {
		e.insert(finished(n[name], logstore.StatusSuccess, 3)...)
	}
	e.insert(finished(other, logstore.StatusFail, 3)...)
	return n
}

// testByRequest: every node of the request, latest state each, by CreatedAt then NodeID.
func testByRequest(t *testing.T, s *suite) {
	e := s.setup(t)
	req := e.name("req")
	n := callTree(e, req)
	rows := e.byRequest(req)
	want := []string{"root", "a", "s", "b", "b2", "s1", "c"}
	require.Len(t, rows, len(want))
	for i, name := range want {
		requireRow(t, finished(n[name], logstore.StatusSuccess, 3)[2], rows[i])
	}
	require.Len(t, e.byRequest(req+"-other"), 1)
	require.Empty(t, e.byRequest(e.name("nosuch")))
}

// testByNode: the node and all its descendants through several levels, never siblings,
// ancestors, or nodes of other requests.
func testByNode(t *testing.T, s *suite) {
	e := s.setup(t)
	req := e.name("req")
	n := callTree(e, req)
	for _, tc := range []struct {
		node string
		want []string
	}{
		{"root", []string{"root", "a", "s", "b", "b2", "s1", "c"}},
		{"a", []string{"a", "b", "b2", "c"}},
		{"b", []string{"b", "c"}},
		{"s", []string{"s", "s1"}},
		{"c", []string{"c"}},
	} {
		rows, err := e.st.ByNode(e.ctx, req, n[tc.node].NodeID)
		require.NoError(t, err, tc.node)
		want := make([]string, len(tc.want))
		for i, name := range tc.want {
			want[i] = n[name].NodeID
		}
		require.Equal(t, want, nodeIDs(rows), "ByNode(%s)", tc.node)
		for _, r := range rows {
			require.Equal(t, logstore.StatusSuccess, r.Status, "latest state of %s", r.NodeID)
		}
	}
	rows, err := e.st.ByNode(e.ctx, req+"-other", n["a"].NodeID)
	require.NoError(t, err)
	require.Empty(t, rows, "a node asked for in a request it is not in")
	rows, err = e.st.ByNode(e.ctx, req, e.name("nosuch"))
	require.NoError(t, err)
	require.Empty(t, rows)
}

// testAttempts: every recorded state of a node, oldest first by RecordedAt then Seq.
func testAttempts(t *testing.T, s *suite) {
	e := s.setup(t)
	day := e.days(1)
	n := e.node(e.name("events.Attempts"), e.name("req"), e.name("n"), "", day.Add(time.Hour))
	var want []logstore.Row
	seq := 0
	add := func(attempt int, status string, after time.Duration) {
		r := state(n, seq, status, after)
		r.Attempt = attempt
		if status == logstore.StatusFail {
			r.Error = &logstore.RowError{Code: "js_error", Message: "try again"}
		}
		want = append(want, r)
		seq++
	}
	for attempt := 1; attempt <= 3; attempt++ {
		base := time.Duration(attempt-1) * time.Minute
		if attempt == 1 {
			add(attempt, logstore.StatusWaiting, base)
		} else {
			// Re-queued in the same millisecond as the failure before it: Seq orders them.
			add(attempt, logstore.StatusWaiting, base-time.Minute+2*time.Second)
		}
		add(attempt, logstore.StatusRunning, base+time.Second)
		if attempt < 3 {
			add(attempt, logstore.StatusFail, base+2*time.Second)
		} else {
			add(attempt, logstore.StatusSuccess, base+2*time.Second)
		}
	}
	// Insert shuffled, in three batches.
	order := []int{8, 2, 5, 0, 7, 1, 4, 6, 3}
	var batches [3][]logstore.Row
	for i, k := range order {
		batches[i%3] = append(batches[i%3], want[k])
	}
	for _, b := range batches {
		e.insert(b...)
	}
	other := state(e.node(e.name("events.Attempts"), e.name("req"), e.name("other"), "", day.Add(time.Hour)), 0, logstore.StatusWaiting, 0)
	e.insert(other)

	got := e.attempts(n.NodeID)
	require.Len(t, got, len(want))
	for i := range want {
		requireRow(t, want[i], got[i])
	}
	require.Empty(t, e.attempts(e.name("nosuch")))
}
