package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/backends"
)

// capsApp has a service for each size cap (issue 12, case 5).
var capsApp = map[string]string{
	"app.json":               `{"name": "caps"}`,
	"services/BigSvc/e.json": `{"title": "Big", "type": "services.NormalType"}`,
	"services/BigSvc/index.js": `
exports.big = n => "x".repeat(n);
exports.boom = n => { throw new Error("m".repeat(n)) };
exports.flood = n => { for (let i = 0; i < n; i++) console.log("line " + i + " " + "y".repeat(200)); return "done" };
exports.echo = x => x;
`,
}

// liveHeap is the host's live heap after a collection.
func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// totalAlloc is what the process has allocated so far.
func totalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// nestedJSON is a JSON array nested depth deep around 1.
func nestedJSON(depth int) string {
	return strings.Repeat("[", depth) + "1" + strings.Repeat("]", depth)
}

// The size caps over HTTP, in both sandboxes: a 100 MiB result is answered 422
// result_too_large and its log row stays small; a 64 MiB error message is cut with a marker;
// console output is cut with a marker line; arguments and kwargs nested 9,000 deep are answered
// 400 before they are decoded. The host's live heap comes back to where it was, and a refused
// deep request allocates next to nothing (it took 914 MiB). Not parallel: it measures the
// process's memory.
func TestSizeCapsOverHTTP(t *testing.T) {
	for _, sandbox := range []string{host.SandboxIsolated, host.SandboxInProcess} {
		t.Run(sandbox, func(t *testing.T) {
			h, err := host.New(host.Config{AppDir: writeApp(t, capsApp), Sandbox: sandbox, Workers: 1, MaxBodyBytes: 1 << 16}, backends.Open)
			require.NoError(t, err)
			require.NoError(t, h.Start(context.Background()))
			t.Cleanup(func() { _ = h.Stop(context.Background()) })
			srv, err := New(depsOf(h), Options{Token: testToken, MaxBodyBytes: 1 << 16, MaxValueDepth: h.Config().Limits.MaxValueDepth})
			require.NoError(t, err)
			handler := srv.Handler()
			post := func(path, body string, status int) *httptest.ResponseRecorder {
				return run(t, handler, scenario{method: http.MethodPost, path: path, body: body, wantStatus: status})
			}
			run(t, handler, scenario{method: http.MethodPost, path: "/api/services/services.BigSvc/echo", body: `[1]`, wantStatus: 200})
			base := liveHeap()

			// 100 MiB result: refused where it is made.
			rec := post("/api/services/services.BigSvc/big", fmt.Sprint([]int{100 << 20}), http.StatusUnprocessableEntity)
			var answer struct {
				Error struct {
					Code, Message string
					Details       map[string]any
				} `json:"error"`
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &answer))
			require.Equal(t, "result_too_large", answer.Error.Code)
			require.Contains(t, answer.Error.Message, "--max-result")
			require.Less(t, rec.Body.Len(), 8<<10)

			// 64 MiB error message: cut, with a marker naming the cap.
			rec = post("/api/services/services.BigSvc/boom", fmt.Sprint([]int{64 << 20}), http.StatusUnprocessableEntity)
			require.Contains(t, rec.Body.String(), "truncated")
			require.Contains(t, rec.Body.String(), "--max-error")
			require.Less(t, rec.Body.Len(), 200<<10, "the 64 KiB cap, not 64 MiB")

			// Console flood: cut, the last line says so.
			rec = post("/api/services/services.BigSvc/flood", `[100000]`, http.StatusOK)
			var ok struct {
				Result any
				Logs   []struct{ Level, Message string }
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &ok))
			require.Equal(t, "done", ok.Result)
			require.Contains(t, ok.Logs[len(ok.Logs)-1].Message, "--max-console")
			require.Less(t, rec.Body.Len(), 512<<10, "256 KiB of console output, not 20 MiB")

			// The log rows of those calls are small too.
			require.NoError(t, h.LogWriter().Flush(context.Background()))
			rec = run(t, handler, scenario{method: http.MethodGet, path: "/api/events/logs?fullName=services.BigSvc&pageSize=100", wantStatus: 200})
			require.Contains(t, rec.Body.String(), "result_too_large")
			require.Less(t, rec.Body.Len(), 1<<20, "the rows of a 100 MiB result, a 64 MiB error and a console flood")

			// Nested 9,000 deep (17 KiB): 400 before anything decodes it, via a service and events/send.
			deep := nestedJSON(9000)
			alloc := totalAlloc()
			rec = post("/api/services/services.BigSvc/echo", deep, http.StatusBadRequest)
			require.Contains(t, rec.Body.String(), "--max-depth")
			rec = post("/api/events/send", `{"sender": "services.BigSvc", "kwargs": {"k": `+deep+`}}`, http.StatusBadRequest)
			require.Contains(t, rec.Body.String(), "--max-depth")
			require.Less(t, totalAlloc()-alloc, uint64(32<<20), "two refused 17 KiB requests")
			// Within the cap they go through.
			rec = post("/api/services/services.BigSvc/echo", "["+nestedJSON(60)+"]", http.StatusOK)
			require.Contains(t, rec.Body.String(), nestedJSON(60))
			post("/api/services/services.BigSvc/echo", "["+nestedJSON(70)+"]", http.StatusBadRequest)
			// One level past the cap gets by the body's check and is refused exactly below it.
			rec = post("/api/services/services.BigSvc/echo", "["+nestedJSON(65)+"]", http.StatusBadRequest)
			require.Contains(t, rec.Body.String(), "nested deeper than 64 levels")
			rec = post("/api/events/send", `{"sender": "services.BigSvc", "kwargs": {"k": `+nestedJSON(64)+`}}`, http.StatusBadRequest)
			require.Contains(t, rec.Body.String(), "kwargs nest deeper than 64 levels")
			post("/api/events/send", `{"sender": "services.BigSvc", "kwargs": {"k": `+nestedJSON(60)+`}}`, http.StatusOK)

			require.Less(t, liveHeap()-base, int64(32<<20), "the host's live heap after the large calls")
		})
	}
}
