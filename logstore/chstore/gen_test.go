package chstore_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/trellis-run/trellis/logstore"
)

// rowGen makes rows shaped like the engine's: ~200 elements, requests of three nodes (a root
// and two children), 2–3 states per node (waiting, running, then success or fail), kwargs of
// about 300 bytes, a result or an error with a stack, console logs on the last state, and
// random 32-hex ids. Node i is created at start + span·i/nodes, so a run fills its days evenly
// and batches come in time order, as the writer sends them.
type rowGen struct {
	rng   *rand.Rand
	start time.Time
	span  time.Duration
	nodes int64
	next  int64
}

const (
	benchElements   = 200
	nodesPerRequest = 3
)

func newRowGen(seed uint64, start time.Time, span time.Duration, nodes int64) *rowGen {
	return &rowGen{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), start: start, span: span, nodes: nodes}
}

var (
	benchNames   = func() []string { return names(benchElements, "events.app%d.Element%03dEvent") }()
	benchSenders = func() []string { return names(30, "models.app%d.Model%03d") }()
	benchHosts   = []string{"host-a", "host-b", "host-c", "host-d"}
	errorCodes   = []string{"js_error", "timeout", "http_502"}
)

func names(n int, format string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(format, i%7, i)
	}
	return out
}

// hexID is a stable 32-hex id of (kind, i): the benchmarks recompute request ids from indexes.
func hexID(kind byte, i int64) string {
	a := mix(uint64(i)*0x100 + uint64(kind))
	b := mix(a ^ 0x5bd1e995)
	return fmt.Sprintf("%016x%016x", a, b)
}

func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

func requestID(request int64) string { return hexID('r', request) }

// fullNameOf is the element handling node i.
func fullNameOf(i int64) string { return benchNames[mix(uint64(i))%benchElements] }

// batch returns the rows of the next nodes, at least n rows (fewer at the end).
func (g *rowGen) batch(n int) []logstore.Row {
	rows := make([]logstore.Row, 0, n+3)
	for len(rows) < n && g.next < g.nodes {
		rows = g.node(rows, g.next)
		g.next++
	}
	return rows
}

func (g *rowGen) node(rows []logstore.Row, i int64) []logstore.Row {
	rng := g.rng
	created := g.start.Add(time.Duration(float64(g.span) * float64(i) / float64(g.nodes))).Truncate(time.Millisecond)
	request := i / nodesPerRequest
	parent := ""
	if i%nodesPerRequest != 0 {
		parent = hexID('n', request*nodesPerRequest)
	}
	userID := rng.IntN(1_000_000)
	order := strconv.FormatInt(i, 10)
	kwargs := fmt.Sprintf(`{"userId":%d,"orderId":"ORD-2030-%09s","name":"Customer %d","email":"customer%d@example.com","amount":%d.%02d,"currency":"CNY","items":[{"sku":"SKU-%05d","qty":%d,"price":%d.5},{"sku":"SKU-%05d","qty":1,"price":%d.25}],"channel":"web","coupon":"SPRING-%02d","note":"deliver after 18:00, call before arrival"}`,
		userID, order, userID, userID, rng.IntN(5000), rng.IntN(100), rng.IntN(99999), 1+rng.IntN(5), rng.IntN(500), rng.IntN(99999), rng.IntN(900), rng.IntN(50))
	base := logstore.Row{
		Kind:         logstore.KindEvent,
		FullName:     fullNameOf(i),
		Sender:       benchSenders[i%int64(len(benchSenders))],
		EventType:    "events.NormalType",
		RequestID:    requestID(request),
		NodeID:       hexID('n', i),
		ParentNodeID: parent,
		Attempt:      1,
		CreatedAt:    created,
		Kwargs:       json.RawMessage(kwargs),
		Host:         benchHosts[rng.IntN(len(benchHosts))],
	}
	final := logstore.StatusSuccess
	switch {
	case i%100 == 3:
		final = logstore.StatusRunning
	case i%100 == 5:
		final = logstore.StatusWaiting
	case i%20 == 7:
		final = logstore.StatusFail
	}
	queueDelay := time.Duration(1+rng.IntN(20)) * time.Millisecond
	duration := time.Duration(1+rng.ExpFloat64()*40) * time.Millisecond
	state := func(seq int, status string, at time.Time) logstore.Row {
		r := base
		r.ID = hexID('s', i*4+int64(seq))
		r.Seq = uint32(seq)
		r.Status = status
		r.RecordedAt = at
		return r
	}
	w := state(0, logstore.StatusWaiting, created)
	w.Stage = "queued"
	if final == logstore.StatusWaiting {
		return append(rows, w)
	}
	running := state(1, logstore.StatusRunning, created.Add(queueDelay))
	running.StartTime = running.RecordedAt
	if final == logstore.StatusRunning {
		return append(rows, w, running)
	}
	end := state(2, final, running.StartTime.Add(duration))
	end.StartTime, end.EndTime, end.Duration = running.StartTime, end.RecordedAt, duration.Milliseconds()
	end.Logs = json.RawMessage(`[{"time":"` + created.Format("2006-01-02 15:04:05") + `","level":"info","message":"processing order ORD-2030-` + order + `"}]`)
	if final == logstore.StatusFail {
		code := errorCodes[i%3]
		end.Error = &logstore.RowError{Code: code, Message: "order ORD-2030-" + order + " could not be saved: " + code,
			Stack: "Error: could not be saved\n    at handle (events/Element/index.js:42:11)\n    at saveOrder (commons/orders.js:118:7)"}
	} else {
		end.Result = json.RawMessage(`{"ok":true,"orderId":"ORD-2030-` + order + `","affected":1}`)
	}
	// Half the nodes skip the separate running row (fast handlers record only the outcome).
	if i%2 == 1 {
		return append(rows, w, end)
	}
	return append(rows, w, running, end)
}
