package web

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/backends"
)

// setupWatched starts a host with hot reload on and returns it with its handler and app dir.
func setupWatched(t *testing.T, files map[string]string) (*host.Host, *Server, string) {
	t.Helper()
	dir := writeApp(t, files)
	h, err := host.New(host.Config{AppDir: dir, Sandbox: host.SandboxInProcess, Workers: 1, Watch: true, MaxBodyBytes: 1 << 16}, backends.Open)
	require.NoError(t, err)
	require.NoError(t, h.Start(context.Background()))
	t.Cleanup(func() { _ = h.Stop(context.Background()) })
	srv, err := New(depsOf(h), Options{Token: testToken, MaxBodyBytes: 1 << 16})
	require.NoError(t, err)
	return h, srv, dir
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

// TestElementSchemaIsTheRegistrys: the schema served for an element is the registry's, field
// for field: a field a Type adds to its Meta's shows up, with its type, default and enum.
func TestElementSchemaIsTheRegistrys(t *testing.T) {
	t.Parallel()
	files := map[string]string{}
	for k, v := range testApp {
		files[k] = v
	}
	files["services/RichType/e.json"] = `{"type": "services.Meta", "schema": {"level": {"type": "string", "enum": ["low", "high"], "default": "low", "description": "how loud"}}}`
	files["services/Rich/e.json"] = `{"type": "services.RichType"}`
	files["services/Rich/index.js"] = `exports.x = function () { return 1; };`
	h, srv, _ := setupWatched(t, files)
	handler := srv.Handler()

	for _, name := range []string{"services.Rich", "services.MathSvc", "events.NormalType", "services.Meta"} {
		want, err := json.Marshal(h.Snapshot().Schema(name))
		require.NoError(t, err)
		rec := run(t, handler, scenario{method: "GET", path: "/api/elements/" + name + "/schema", wantStatus: 200})
		require.JSONEq(t, string(want), rec.Body.String(), name)
		rec = run(t, handler, scenario{method: "GET", path: "/api/elements/" + name, wantStatus: 200})
		got, err := json.Marshal(decode(t, rec.Body.Bytes())["schema"])
		require.NoError(t, err)
		require.JSONEq(t, string(want), string(got), name)
	}
	rec := run(t, handler, scenario{method: "GET", path: "/api/elements/services.Rich/schema", wantStatus: 200})
	fields := decode(t, rec.Body.Bytes())["fields"].(map[string]any)
	require.Equal(t, map[string]any{"type": "string", "enum": []any{"low", "high"}, "default": "low", "hasDefault": true, "description": "how loud"}, fields["level"])
	run(t, handler, scenario{method: "GET", path: "/api/elements/services.Nope/schema", wantStatus: 404})
}

// waitFor polls until ok or fails after a few seconds (hot reload debounces file events).
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestElementProblemsMatchTheText: GET answers the files on disk with the problems found in
// them, and the running last good version beside; a new element broken on disk is listed and
// readable, so the editor can fix it.
func TestElementProblemsMatchTheText(t *testing.T) {
	t.Parallel()
	_, srv, dir := setupWatched(t, testApp)
	handler := srv.Handler()
	good := testApp["services/MathSvc/e.json"]
	broken := "{\n  \"title\": \"Math\",\n  \"type\": \"services.NormalType\",\n  \"bogus\": 1\n}\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "services/MathSvc/e.json"), []byte(broken), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "services/NewSvc"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "services/NewSvc/e.json"), []byte(`{"title": "Fresh", "type": "services.NormalType"}`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "services/NewSvc/index.js"), []byte("exports.x = function ( {"), 0o644))

	var el map[string]any
	waitFor(t, "the reload", func() bool {
		rec := run(t, handler, scenario{method: "GET", path: "/api/elements/services.MathSvc", wantStatus: 200})
		el = decode(t, rec.Body.Bytes())
		return el["brokenOnDisk"] == true
	})
	files := el["files"].(map[string]any)
	require.Equal(t, broken, files["e.json"], "the editor edits the disk text")
	require.Equal(t, good, el["running"].(map[string]any)["files"].(map[string]any)["e.json"])
	errs := el["errors"].([]any)
	require.Len(t, errs, 1)
	p := errs[0].(map[string]any)
	require.Equal(t, "unknown_field", p["code"])
	require.Equal(t, float64(4), p["line"], "the problem is at its line in the disk text")
	require.NotEmpty(t, el["version"])

	// The new broken element: readable, listed with its problem count.
	rec := run(t, handler, scenario{method: "GET", path: "/api/elements/services.NewSvc", wantStatus: 200})
	nw := decode(t, rec.Body.Bytes())
	require.Equal(t, true, nw["brokenOnDisk"])
	require.Equal(t, "Fresh", nw["title"])
	require.Nil(t, nw["running"])
	require.Equal(t, "exports.x = function ( {", nw["files"].(map[string]any)["index.js"])
	require.NotEmpty(t, nw["errors"])
	require.NotEmpty(t, nw["version"], "a new broken element can be saved over")
	require.NotNil(t, nw["schema"])

	rec = run(t, handler, scenario{method: "GET", path: "/api/elements", wantStatus: 200})
	var list []elementSummary
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &list))
	byName := map[string]elementSummary{}
	for _, r := range list {
		byName[r.FullName] = r
	}
	require.Equal(t, elementSummary{FullName: "services.NewSvc", Title: "Fresh", Type: "services.NormalType", Layer: "instance", Origin: "app", Problems: 1, BrokenOnDisk: true}, byName["services.NewSvc"])
	require.Equal(t, 1, byName["services.MathSvc"].Problems)
	require.True(t, byName["services.MathSvc"].BrokenOnDisk)
	require.Zero(t, byName["services.Meta"].Problems)
}
