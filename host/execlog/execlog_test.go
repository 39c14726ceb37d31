package execlog_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/execlog"
	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

type sink struct {
	rows []logstore.Row
	err  error
}

func (s *sink) Write(_ context.Context, rows ...logstore.Row) error {
	if s.err != nil {
		return s.err
	}
	s.rows = append(s.rows, rows...)
	return nil
}
func (s *sink) Flush(context.Context) error { return s.err }

func TestRowCarriesTheNodeAFreshIDTheHostAndTheNextSeq(t *testing.T) {
	t.Parallel()
	rec := execlog.NewRecorder(&sink{}, execlog.HostLabel("m1", "inst_1"))
	require.Equal(t, "m1/inst_1", rec.Host())
	at := time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC)
	n := execlog.Node{Kind: logstore.KindEvent, FullName: "events.A", Sender: "services.S", EventType: "events.NormalType",
		EventID: "evt_1", RequestID: "req_1", NodeID: "node_1", ParentNodeID: "node_0", Attempt: 2, CreatedAt: at,
		Kwargs: json.RawMessage(`{"a":1}`)}
	a := rec.Row(n, logstore.StatusWaiting, logstore.StageQueued, at)
	b := rec.Row(n, logstore.StatusRunning, logstore.StageRunning, at)
	require.NotEqual(t, a.ID, b.ID)
	require.Regexp(t, `^st_[0-9a-f]{24}$`, a.ID)
	require.Greater(t, b.Seq, a.Seq, "rows of one millisecond keep their order")
	require.Equal(t, "m1/inst_1", a.Host)
	require.Equal(t, n, execlog.NodeOf(a), "every node field is carried")
	require.Equal(t, logstore.StageQueued, a.Stage)
	require.Equal(t, at, a.RecordedAt)

	// An attempt below 1 is the first.
	n.Attempt = 0
	require.Equal(t, 1, rec.Row(n, logstore.StatusWaiting, logstore.StageQueued, at).Attempt)

	// Next keeps the node and its start, not the outcome.
	prev := rec.Row(execlog.Node{RequestID: "r", NodeID: "n", Attempt: 3}, logstore.StatusRunning, logstore.StageAwaitingCallback, at)
	prev.StartTime, prev.Result = at, json.RawMessage(`1`)
	next := rec.Next(prev, logstore.StatusSuccess, logstore.StageCallback, at.Add(time.Second))
	require.Equal(t, 3, next.Attempt)
	require.Equal(t, at, next.StartTime)
	require.Nil(t, next.Result)
	require.Greater(t, next.Seq, prev.Seq)
}

func TestFinishFillsTheOutcome(t *testing.T) {
	t.Parallel()
	start := time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC)
	end := start.Add(1500 * time.Millisecond)
	failed := "no stock"
	cases := []struct {
		name       string
		res        jsvm.Result
		err        error
		wantResult string
		wantErr    *logstore.RowError
	}{
		{"success", jsvm.Result{Value: map[string]any{"id": int64(9007199254740993)}, Logs: []jsvm.LogEntry{{Level: "info", Message: "hi"}}},
			nil, `{"id":9007199254740993}`, nil},
		{"thrown", jsvm.Result{}, &jsvm.Error{Code: vocab.CodeJSError, Message: "boom", Stack: "at services/S/index.js:3:9"},
			"", &logstore.RowError{Code: vocab.CodeJSError, Message: "boom", Stack: "at services/S/index.js:3:9"}},
		{"limit", jsvm.Result{}, &jsvm.Error{Code: vocab.CodeTimeout, Message: "ran past 1s"},
			"", &logstore.RowError{Code: vocab.CodeTimeout, Message: "ran past 1s"}},
		{"ctx.fail", jsvm.Result{Failed: &failed}, nil, "", &logstore.RowError{Code: vocab.CodeFailed, Message: failed}},
		{"plain Go error", jsvm.Result{}, errors.New("bus down"), "", &logstore.RowError{Code: vocab.CodeJSError, Message: "bus down"}},
		{"coded Go error", jsvm.Result{}, vocab.Errorf(vocab.CodeUnavailable, "store down"), "", &logstore.RowError{Code: vocab.CodeUnavailable, Message: "store down"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r logstore.Row
			got := execlog.Finish(&r, start, end, tc.res, tc.err)
			require.Equal(t, tc.wantErr, got)
			require.Equal(t, tc.wantErr, r.Error)
			require.Equal(t, int64(1500), r.Duration)
			require.Equal(t, start, r.StartTime)
			require.Equal(t, end, r.EndTime)
			if tc.wantResult != "" {
				require.JSONEq(t, tc.wantResult, string(r.Result))
			} else {
				require.Nil(t, r.Result)
			}
			if len(tc.res.Logs) > 0 {
				require.Contains(t, string(r.Logs), `"hi"`)
			}
		})
	}
}

// A sink that refuses rows does not fail the run that wrote them (Write), but a caller that
// must know can ask (WriteErr).
func TestWriteReportsButDoesNotFail(t *testing.T) {
	t.Parallel()
	s := &sink{err: errors.New("spool full")}
	rec := execlog.NewRecorder(s, "h")
	row := rec.Row(execlog.Node{NodeID: "n"}, logstore.StatusSuccess, logstore.StageDone, time.Now())
	rec.Write(context.Background(), row)
	require.ErrorContains(t, rec.WriteErr(context.Background(), row), "spool full")
	require.ErrorContains(t, rec.Flush(context.Background()), "spool full")
	s.err = nil
	rec.Write(context.Background())
	require.Empty(t, s.rows, "nothing to write is nothing written")
	rec.Write(context.Background(), row)
	require.Len(t, s.rows, 1)
}
