package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/backends"
	"github.com/trellis-run/trellis/logstore"
)

// setupWithLogs starts a host, writes a small call tree into its execution log through the
// writer (as executions do) and returns the handler.
func setupWithLogs(t *testing.T) http.Handler {
	t.Helper()
	h, err := host.New(host.Config{AppDir: writeApp(t, testApp), Sandbox: host.SandboxInProcess}, backends.Open)
	require.NoError(t, err)
	require.NoError(t, h.Start(context.Background()))
	t.Cleanup(func() { _ = h.Stop(context.Background()) })
	base := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	row := func(id, node, parent, status string, at time.Duration) logstore.Row {
		r := logstore.Row{ID: id, Kind: logstore.KindEvent, FullName: "events.UserLogin", Sender: "models.UserModel",
			EventType: "events.NormalType", Status: status, RequestID: "req_1", NodeID: node, ParentNodeID: parent,
			CreatedAt: base.Add(at), RecordedAt: base.Add(at + time.Second), Duration: 5, Host: "h1",
			Kwargs: json.RawMessage(`{"userId": 7}`)}
		if status == logstore.StatusFail {
			r.Error = &logstore.RowError{Code: "js_error", Message: "boom"}
		}
		return r
	}
	w := h.LogWriter()
	require.NoError(t, w.Write(context.Background(),
		row("s1", "n1", "", logstore.StatusSuccess, 0),
		row("s2", "n2", "n1", logstore.StatusFail, time.Minute),
		row("s3", "n3", "n2", logstore.StatusSuccess, 2*time.Minute),
		row("s4", "n4", "", logstore.StatusRunning, 3*time.Minute),
	))
	require.NoError(t, w.Flush(context.Background()))
	srv, err := New(depsOf(h), Options{Token: testToken})
	require.NoError(t, err)
	return srv.Handler()
}

func TestLogRoutes(t *testing.T) {
	t.Parallel()
	handler := setupWithLogs(t)
	day := "startTime=2024-01-15%2000:00:00&endTime=2024-01-16%2000:00:00"
	for _, sc := range []scenario{
		{name: "getEventLog", method: "GET", path: "/api/events/logs?fullName=events.UserLogin&" + day, wantStatus: 200,
			wantIn: []string{`"totalCount":4`, `"nodeId":"n4"`, `"createdAt":"2024-01-15 10:03:00"`}},
		{name: "status filter", method: "GET", path: "/api/events/logs?fullName=events.UserLogin&status=fail", wantStatus: 200,
			wantIn: []string{`"totalCount":1`, `"code":"js_error"`}},
		{name: "kwargs filter", method: "GET", path: "/api/events/logs?kwargs.userId=7&pageSize=1", wantStatus: 200, wantIn: []string{`"totalCount":4`}},
		{name: "epoch ms times", method: "GET", path: fmt.Sprintf("/api/events/logs?startTime=%d", time.Date(2024, 1, 15, 10, 2, 0, 0, time.UTC).UnixMilli()), wantStatus: 200, wantIn: []string{`"totalCount":2`}},
		{name: "unknown status", method: "GET", path: "/api/events/logs?status=done", wantStatus: 400, wantIn: []string{"status"}},
		{name: "inverted times", method: "GET", path: "/api/events/logs?startTime=2024-01-16&endTime=2024-01-15", wantStatus: 400, wantIn: []string{"not before"}},
		{name: "unparseable time", method: "GET", path: "/api/events/logs?startTime=yesterday", wantStatus: 400, wantIn: []string{"startTime"}},
		{name: "page 0", method: "GET", path: "/api/events/logs?page=0", wantStatus: 400, wantIn: []string{"page"}},
		{name: "pageSize too big", method: "GET", path: "/api/events/logs?pageSize=1001", wantStatus: 400, wantIn: []string{"pageSize"}},
		{name: "page not a number", method: "GET", path: "/api/events/logs?page=two", wantStatus: 400, wantIn: []string{"whole number"}},
		{name: "bad kwargs key", method: "GET", path: "/api/events/logs?kwargs.a%27b=1", wantStatus: 400, wantIn: []string{"kwargs"}},
		{name: "by request", method: "GET", path: "/api/events/requests/req_1", wantStatus: 200, wantIn: []string{`"n1"`, `"n4"`}},
		{name: "by node has descendants", method: "GET", path: "/api/events/requests/req_1/nodes/n2", wantStatus: 200, wantIn: []string{`"nodeId":"n3"`}},
		{name: "unknown request", method: "GET", path: "/api/events/requests/req_nope", wantStatus: 404},
		{name: "hostile request id", method: "GET", path: "/api/events/requests/..%2F..", wantStatus: 400},
		{name: "attempts", method: "GET", path: "/api/events/nodes/n2/attempts", wantStatus: 200, wantIn: []string{`"id":"s2"`}},
		{name: "summary", method: "GET", path: "/api/analytics/summary?start=2024-01-15&end=2024-01-16", wantStatus: 200,
			wantIn: []string{`"fullName":"events.UserLogin"`, `"total":4`, `"failureRate"`}},
		{name: "timeseries", method: "GET", path: "/api/analytics/timeseries?start=2024-01-15%2010:00:00&end=2024-01-15%2011:00:00&bucket=1m", wantStatus: 200,
			wantIn: []string{`"start":"2024-01-15 10:01:00"`, `"failed":1`}},
		{name: "bucket too small", method: "GET", path: "/api/analytics/timeseries?bucket=30s", wantStatus: 400, wantIn: []string{"bucket"}},
		{name: "too many buckets", method: "GET", path: "/api/analytics/timeseries?start=2000-01-01&end=2024-01-01&bucket=1m", wantStatus: 400, wantIn: []string{"buckets"}},
		{name: "summary inverted", method: "GET", path: "/api/analytics/summary?start=2024-01-16&end=2024-01-15", wantStatus: 400},
		{name: "bulk resend needs valid filters", method: "POST", path: "/api/events/resend?status=done", wantStatus: 400, wantIn: []string{"status"}},
		{name: "bulk resend of nodes that are not event deliveries of a listener", method: "POST", path: "/api/events/resend?fullName=events.UserLogin&status=fail", wantStatus: 200,
			wantIn: []string{`"resent":[]`, `"skipped":[{"nodeId":"n2"`}},
		{name: "logs need a token", method: "GET", path: "/api/events/logs", noAuth: true, wantStatus: 401},
	} {
		t.Run(sc.name, func(t *testing.T) { run(t, handler, sc) })
	}
}
