package logstoretest

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/logstore"
)

// testQueryFullNameAndTime: fullName selects one element; Start is inclusive, End exclusive, either
// may be open; newest CreatedAt first.
func testQueryFullNameAndTime(t *testing.T, s *suite) {
	e := s.setup(t)
	day := e.days(1)
	a, b := e.name("events.A"), e.name("events.B")
	req := e.name("req")
	start, end := day.Add(10*time.Hour), day.Add(11*time.Hour)
	at := map[string]time.Time{
		"before":   start.Add(-time.Millisecond),
		"atStart":  start,
		"middle":   start.Add(30 * time.Minute),
		"lastMs":   end.Add(-time.Millisecond),
		"atEnd":    end,
		"afterEnd": end.Add(time.Hour),
	}
	for name, created := range at {
		e.insert(finished(e.node(a, req, e.name("a-"+name), "", created), logstore.StatusSuccess, 5)...)
		e.insert(finished(e.node(b, req, e.name("b-"+name), "", created), logstore.StatusSuccess, 5)...)
	}
	names := func(p logstore.Page) []string {
		out := nodeIDs(p.RowDatas)
		for i := range out {
			out[i] = out[i][len(e.name("a-")):]
		}
		return out
	}

	p := e.query(logstore.Query{FullName: a, Start: start, End: end})
	require.EqualValues(t, 3, p.TotalCount)
	require.Equal(t, []string{"lastMs", "middle", "atStart"}, names(p))
	for _, r := range p.RowDatas {
		require.Equal(t, a, r.FullName)
	}

	p = e.query(logstore.Query{FullName: b, Start: start})
	require.Equal(t, []string{"afterEnd", "atEnd", "lastMs", "middle", "atStart"}, names(p))
	p = e.query(logstore.Query{FullName: b, End: end})
	require.Equal(t, []string{"lastMs", "middle", "atStart", "before"}, names(p))
	p = e.query(logstore.Query{FullName: b})
	require.EqualValues(t, 6, p.TotalCount)

	// No fullName: every element in the range (this day is this subtest's alone).
	p = e.query(logstore.Query{Start: start, End: end})
	require.EqualValues(t, 6, p.TotalCount)

	p = e.query(logstore.Query{FullName: e.name("events.Nobody")})
	require.Zero(t, p.TotalCount)
	require.Empty(t, p.RowDatas)
}

// testQueryStatus: the status filter applies to the latest state only, and counts follow it.
func testQueryStatus(t *testing.T, s *suite) {
	e := s.setup(t)
	day := e.days(1)
	fn := e.name("events.Status")
	req := e.name("req")
	want := map[string]int{}
	var rows []logstore.Row
	statuses := []string{logstore.StatusSuccess, logstore.StatusFail, logstore.StatusRunning, logstore.StatusWaiting}
	for i := range 23 {
		n := e.node(fn, req, e.name(fmt.Sprintf("n%02d", i)), "", day.Add(time.Duration(i)*time.Minute))
		st := statuses[i%4]
		want[st]++
		switch st {
		case logstore.StatusSuccess, logstore.StatusFail:
			rows = append(rows, finished(n, st, 10)...)
		case logstore.StatusRunning:
			// Failed once, then running again: not a fail any more.
			f := state(n, 1, logstore.StatusFail, time.Second)
			r := state(n, 2, logstore.StatusRunning, 2*time.Second)
			rows = append(rows, state(n, 0, logstore.StatusWaiting, 0), f, r)
		default:
			// Ran, then was queued for a retry.
			rows = append(rows, state(n, 0, logstore.StatusRunning, 0), state(n, 1, logstore.StatusWaiting, time.Second))
		}
	}
	e.insert(rows...)
	total := 0
	for _, st := range statuses {
		p := e.query(logstore.Query{FullName: fn, Status: st, PageSize: 100})
		require.EqualValues(t, want[st], p.TotalCount, st)
		require.Len(t, p.RowDatas, want[st], st)
		for _, r := range p.RowDatas {
			require.Equal(t, st, r.Status)
		}
		total += want[st]
	}
	require.EqualValues(t, total, e.query(logstore.Query{FullName: fn}).TotalCount)
}

// testQueryPaging: totalCount, full pages, the last partial page, a page past the end, defaults.
func testQueryPaging(t *testing.T, s *suite) {
	e := s.setup(t)
	day := e.days(1)
	fn := e.name("events.Paging")
	const nodes = 45
	var rows []logstore.Row
	var newestFirst []string
	for i := range nodes {
		n := e.node(fn, e.name(fmt.Sprintf("req%d", i%3)), e.name(fmt.Sprintf("n%02d", i)), "", day.Add(time.Duration(i)*time.Minute+time.Duration(i)*time.Millisecond))
		rows = append(rows, finished(n, logstore.StatusSuccess, int64(i))...)
		newestFirst = append([]string{n.NodeID}, newestFirst...)
	}
	e.insert(rows...)

	var got []string
	for page, size := range map[int]int{1: 20, 2: 20, 3: 5} {
		p := e.query(logstore.Query{FullName: fn, Page: page, PageSize: 20})
		require.EqualValues(t, nodes, p.TotalCount, "page %d", page)
		require.Len(t, p.RowDatas, size, "page %d", page)
		require.Equal(t, newestFirst[(page-1)*20:(page-1)*20+size], nodeIDs(p.RowDatas), "page %d", page)
		got = append(got, nodeIDs(p.RowDatas)...)
	}
	require.ElementsMatch(t, newestFirst, got)

	p := e.query(logstore.Query{FullName: fn, Page: 4, PageSize: 20})
	require.EqualValues(t, nodes, p.TotalCount, "a page past the end still counts")
	require.Empty(t, p.RowDatas)
	p = e.query(logstore.Query{FullName: fn, Page: 1000, PageSize: logstore.MaxPageSize})
	require.EqualValues(t, nodes, p.TotalCount)
	require.Empty(t, p.RowDatas)

	// Zero Page and PageSize take the defaults (page 1 of DefaultPageSize).
	p = e.query(logstore.Query{FullName: fn})
	require.Equal(t, newestFirst[:logstore.DefaultPageSize], nodeIDs(p.RowDatas))

	p = e.query(logstore.Query{FullName: fn, Page: 2, PageSize: 7})
	require.Equal(t, newestFirst[7:14], nodeIDs(p.RowDatas))
	p = e.query(logstore.Query{FullName: fn, PageSize: logstore.MaxPageSize})
	require.Equal(t, newestFirst, nodeIDs(p.RowDatas))
}

// testQueryFreeFilters: sender, host, error code and kwargs fields (numbers, strings, booleans,
// several keys at once), alone and with the status filter; all apply to the latest state.
func testQueryFreeFilters(t *testing.T, s *suite) {
	e := s.setup(t)
	day := e.days(1)
	fn := e.name("events.Filters")
	req := e.name("req")
	type spec struct {
		sender, host, code, kwargs string
	}
	specs := map[string]spec{
		"n1": {"models.UserModel", "host-a", "", `{"userId":1,"name":"Ann","vip":true}`},
		"n2": {"models.UserModel", "host-b", "timeout", `{"userId":"1","name":"Bob","vip":false}`},
		"n3": {"models.OrderModel", "host-a", "js_error", `{"userId":2,"name":"Ann","amount":2.5}`},
		"n4": {"models.OrderModel", "host-b", "timeout", `{"orderId":1,"name":"Cy"}`},
		"n5": {"services.BackupSvc", "host-c", "", `{"userId":11,"name":"Ann Lee"}`},
		"n6": {"services.BackupSvc", "host-c", "", `{"city":"São Paulo","quote":"say \"hi\"","esc":"\u00e9t\u00e9"}`},
		"n7": {"services.BackupSvc", "host-d", "", `{"meta":{"userId":1,"name":"Ann"}}`},
	}
	i := 0
	for id, sp := range specs {
		i++
		n := e.node(fn, req, e.name(id), "", day.Add(time.Duration(i)*time.Minute))
		n.Sender = sp.sender
		n.Host = sp.host
		n.Kwargs = json.RawMessage(sp.kwargs)
		status := logstore.StatusSuccess
		if sp.code != "" {
			status = logstore.StatusFail
		}
		rows := finished(n, status, 10)
		rows[2].Error = nil
		if sp.code != "" {
			rows[2].Error = &logstore.RowError{Code: sp.code, Message: "failed"}
		}
		// An earlier state with another host and error code: filters must use the latest.
		rows[1].Host = "host-old"
		rows[1].Error = &logstore.RowError{Code: "stale", Message: "old"}
		e.insert(rows...)
	}
	// n7 has userId and name inside an object: filters on those keys must not find it where the
	// backend matches top-level keys only (Features.KwargsTopLevelOnly), and may elsewhere.
	nestedMay := map[string]bool{"kwargs number and string": true, "kwargs string": true}
	for _, tc := range []struct {
		name string
		q    logstore.Query
		want []string
	}{
		{"sender", logstore.Query{Sender: "models.OrderModel"}, []string{"n3", "n4"}},
		{"host", logstore.Query{Host: "host-a"}, []string{"n1", "n3"}},
		{"stale host", logstore.Query{Host: "host-old"}, nil},
		{"errorCode", logstore.Query{ErrorCode: "timeout"}, []string{"n2", "n4"}},
		{"stale errorCode", logstore.Query{ErrorCode: "stale"}, nil},
		{"kwargs number and string", logstore.Query{Kwargs: map[string]string{"userId": "1"}}, []string{"n1", "n2"}},
		{"kwargs number is not a prefix", logstore.Query{Kwargs: map[string]string{"userId": "11"}}, []string{"n5"}},
		{"kwargs string", logstore.Query{Kwargs: map[string]string{"name": "Ann"}}, []string{"n1", "n3"}},
		{"kwargs float", logstore.Query{Kwargs: map[string]string{"amount": "2.5"}}, []string{"n3"}},
		{"kwargs bool", logstore.Query{Kwargs: map[string]string{"vip": "true"}}, []string{"n1"}},
		{"kwargs two keys", logstore.Query{Kwargs: map[string]string{"name": "Ann", "userId": "2"}}, []string{"n3"}},
		{"kwargs nested object", logstore.Query{Kwargs: map[string]string{"meta": `{"userId":1,"name":"Ann"}`}}, []string{"n7"}},
		{"kwargs missing key", logstore.Query{Kwargs: map[string]string{"nothere": "1"}}, nil},
		{"kwargs orderId", logstore.Query{Kwargs: map[string]string{"orderId": "1"}}, []string{"n4"}},
		{"kwargs unicode", logstore.Query{Kwargs: map[string]string{"city": "São Paulo"}}, []string{"n6"}},
		{"kwargs escaped quote", logstore.Query{Kwargs: map[string]string{"quote": `say "hi"`}}, []string{"n6"}},
		{"kwargs escaped unicode", logstore.Query{Kwargs: map[string]string{"esc": "été"}}, []string{"n6"}},
		{"all at once", logstore.Query{Sender: "models.UserModel", Host: "host-b", ErrorCode: "timeout", Kwargs: map[string]string{"name": "Bob"}}, []string{"n2"}},
		{"with status", logstore.Query{Status: logstore.StatusFail, Kwargs: map[string]string{"name": "Ann"}}, []string{"n3"}},
		{"no match", logstore.Query{Sender: "models.UserModel", Host: "host-c"}, nil},
		{"host of two", logstore.Query{Host: "host-c", Sender: "services.BackupSvc"}, []string{"n5", "n6"}},
		{"text in kwargs, any case", logstore.Query{Text: "bOB"}, []string{"n2"}},
		{"text in kwargs, nested too", logstore.Query{Text: "ann"}, []string{"n1", "n3", "n5", "n7"}},
		{"text in the error code", logstore.Query{Text: "TIMEOUT"}, []string{"n2", "n4"}},
		{"text in the error message", logstore.Query{Text: "fail"}, []string{"n2", "n3", "n4"}},
		{"text of an earlier state", logstore.Query{Text: "old"}, nil},
		{"text non-ASCII", logstore.Query{Text: "são"}, []string{"n6"}},
		{"text with quotes and wildcards", logstore.Query{Text: `'%_\`}, nil},
		{"text and sender", logstore.Query{Text: "ann", Sender: "models.UserModel"}, []string{"n1"}},
		{"text and status", logstore.Query{Text: "ann", Status: logstore.StatusFail}, []string{"n3"}},
	} {
		q := tc.q
		q.FullName = fn
		p := e.query(q)
		want := make([]string, len(tc.want))
		for i, id := range tc.want {
			want[i] = e.name(id)
		}
		got := nodeIDs(p.RowDatas)
		if nestedMay[tc.name] && !s.f.KwargsTopLevelOnly && slices.Contains(got, e.name("n7")) {
			want = append(want, e.name("n7"))
		}
		require.EqualValues(t, len(want), p.TotalCount, tc.name)
		require.ElementsMatch(t, want, got, tc.name)
	}
}

// testQueryStage: the stage filter applies to the latest state only (a dead-lettered node that
// was resent is not dead-lettered any more), alone, with the status, and over every element.
func testQueryStage(t *testing.T, s *suite) {
	e := s.setup(t)
	day := e.days(1)
	fn, other := e.name("events.Stage"), e.name("events.StageOther")
	req := e.name("req")
	dead := func(fullName, id string, at time.Duration) []logstore.Row {
		rows := finished(e.node(fullName, req, e.name(id), "", day.Add(at)), logstore.StatusFail, 10)
		rows[2].Stage = logstore.StageDeadLettered
		return rows
	}
	e.insert(dead(fn, "dead1", time.Minute)...)
	e.insert(dead(fn, "dead2", 2*time.Minute)...)
	e.insert(dead(other, "dead3", 3*time.Minute)...)
	// Dead-lettered, then resent: its latest state is waiting · resent.
	resent := dead(fn, "resent", 4*time.Minute)
	again := state(resent[0], 3, logstore.StatusWaiting, time.Second)
	again.Stage, again.Attempt = logstore.StageResent, 2
	e.insert(append(resent, again)...)
	// Failed and retried later: fail · retryScheduled is no dead letter.
	retry := finished(e.node(fn, req, e.name("retry"), "", day.Add(5*time.Minute)), logstore.StatusFail, 10)
	retry[2].Stage = logstore.StageRetryScheduled
	e.insert(retry...)
	// An earlier state was dead-lettered in name only: the filter reads the latest.
	ok := finished(e.node(fn, req, e.name("ok"), "", day.Add(6*time.Minute)), logstore.StatusSuccess, 10)
	ok[1].Stage = logstore.StageDeadLettered
	ok[2].Stage = logstore.StageDone
	e.insert(ok...)

	ids := func(p logstore.Page) []string {
		out := nodeIDs(p.RowDatas)
		for i := range out {
			out[i] = out[i][len(e.name("")):]
		}
		return out
	}
	for _, tc := range []struct {
		name string
		q    logstore.Query
		want []string
	}{
		{"dead letters of one element", logstore.Query{FullName: fn, Stage: logstore.StageDeadLettered}, []string{"dead2", "dead1"}},
		{"with the status", logstore.Query{FullName: fn, Status: logstore.StatusFail, Stage: logstore.StageDeadLettered}, []string{"dead2", "dead1"}},
		{"status and stage disagree", logstore.Query{FullName: fn, Status: logstore.StatusSuccess, Stage: logstore.StageDeadLettered}, nil},
		{"resent", logstore.Query{FullName: fn, Stage: logstore.StageResent}, []string{"resent"}},
		{"retry scheduled", logstore.Query{FullName: fn, Stage: logstore.StageRetryScheduled}, []string{"retry"}},
		{"done", logstore.Query{FullName: fn, Stage: logstore.StageDone}, []string{"ok"}},
		{"every element", logstore.Query{Start: day, End: day.Add(24 * time.Hour), Stage: logstore.StageDeadLettered}, []string{"dead3", "dead2", "dead1"}},
	} {
		p := e.query(tc.q)
		require.EqualValues(t, len(tc.want), p.TotalCount, tc.name)
		if tc.want == nil {
			require.Empty(t, p.RowDatas, tc.name)
			continue
		}
		require.Equal(t, tc.want, ids(p), tc.name)
		for _, r := range p.RowDatas {
			require.Equal(t, tc.q.Stage, r.Stage, tc.name)
		}
	}
}
