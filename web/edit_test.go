package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/backends"
)

// setupEditing starts a host with hot reload on, as `trellis serve` runs, and returns the
// handler and the app directory.
func setupEditing(t *testing.T, files map[string]string, mutate func(*host.Config)) (http.Handler, string) {
	t.Helper()
	dir := writeApp(t, files)
	cfg := host.Config{AppDir: dir, Sandbox: host.SandboxInProcess, Workers: 1, Watch: true, MaxBodyBytes: 1 << 16}
	if mutate != nil {
		mutate(&cfg)
	}
	h, err := host.New(cfg, backends.Open)
	require.NoError(t, err)
	require.NoError(t, h.Start(context.Background()))
	t.Cleanup(func() { _ = h.Stop(context.Background()) })
	srv, err := New(depsOf(h), Options{Token: testToken, MaxBodyBytes: 1 << 16})
	require.NoError(t, err)
	return srv.Handler(), dir
}

// versionOf reads the version GET /api/elements/{fullName} answers.
func versionOf(t *testing.T, handler http.Handler, fullName string) string {
	t.Helper()
	rec := run(t, handler, scenario{method: "GET", path: "/api/elements/" + fullName, wantStatus: 200})
	var body struct{ Version string }
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	require.NotEmpty(t, body.Version, "an app element has a version")
	return body.Version
}

func jsonBody(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

const svcDef = `{"title": "Greeter", "type": "services.NormalType"}`

func TestSaveElement(t *testing.T) {
	t.Parallel()
	handler, dir := setupEditing(t, testApp, nil)
	body := func(def string, files map[string]string, version string) string {
		m := map[string]any{"definition": def, "files": files}
		if version != "" {
			m["version"] = version
		}
		return jsonBody(t, m)
	}
	hello := map[string]string{"index.js": `exports.hi = function (n) { return "hi " + n; };`}

	// Create: no version, the element does not exist.
	run(t, handler, scenario{method: "PUT", path: "/api/elements/services.Greeter", body: body(svcDef, hello, ""), wantStatus: 201,
		wantIn: []string{`"created":true`, `"current":true`, `"version":"`}})
	// The save answered once the new version is current: it runs at once.
	run(t, handler, scenario{method: "POST", path: "/api/services/services.Greeter/hi", body: `["Ada"]`, wantStatus: 200, wantIn: []string{`"result":"hi Ada"`}})
	v1 := versionOf(t, handler, "services.Greeter")

	// Create again without a version: 409 with what is there.
	rec := run(t, handler, scenario{method: "PUT", path: "/api/elements/services.Greeter", body: body(svcDef, hello, ""), wantStatus: 409,
		wantIn: []string{`"code":"conflict"`, `"version":"` + v1 + `"`, "already exists", `"index.js"`}})
	_ = rec

	// Replace with the version read: it runs the new code.
	bye := map[string]string{"index.js": `exports.hi = function (n) { return "bye " + n; };`, "lib/util.js": `exports.x = 1;`}
	run(t, handler, scenario{method: "PUT", path: "/api/elements/services.Greeter", body: body(svcDef, bye, v1), wantStatus: 200, wantIn: []string{`"created":false`}})
	run(t, handler, scenario{method: "POST", path: "/api/services/services.Greeter/hi", body: `["Ada"]`, wantStatus: 200, wantIn: []string{`"result":"bye Ada"`}})
	require.FileExists(t, filepath.Join(dir, "services/Greeter/lib/util.js"))

	// A second editor still holding v1 is refused, with the current version and content.
	run(t, handler, scenario{method: "PUT", path: "/api/elements/services.Greeter", body: body(svcDef, hello, v1), wantStatus: 409,
		wantIn: []string{"changed since version " + v1, "bye"}})
	// Unless it forces.
	run(t, handler, scenario{method: "PUT", path: "/api/elements/services.Greeter?force=true", body: body(svcDef, hello, v1), wantStatus: 200})
	run(t, handler, scenario{method: "POST", path: "/api/services/services.Greeter/hi", body: `["Ada"]`, wantStatus: 200, wantIn: []string{`"result":"hi Ada"`}})
	require.NoFileExists(t, filepath.Join(dir, "services/Greeter/lib/util.js"), "a save replaces the element's files")

	// A change on disk by hand changes the version too.
	v2 := versionOf(t, handler, "services.Greeter")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "services/Greeter/README.md"), []byte("# notes"), 0o644))
	require.NotEqual(t, v2, versionOf(t, handler, "services.Greeter"))

	// The definition as an object is written as e.json.
	run(t, handler, scenario{method: "PUT", path: "/api/elements/services.Other", body: jsonBody(t, map[string]any{
		"definition": map[string]any{"title": "Other", "type": "services.NormalType"}, "files": hello}), wantStatus: 201})
	ej, err := os.ReadFile(filepath.Join(dir, "services/Other/e.json"))
	require.NoError(t, err)
	require.Contains(t, string(ej), `"type": "services.NormalType"`)

	// Built-ins have no version: they are not files of the app.
	run(t, handler, scenario{method: "GET", path: "/api/elements/events.NormalType", wantStatus: 200})
	require.NotContains(t, run(t, handler, scenario{method: "GET", path: "/api/elements/events.NormalType", wantStatus: 200}).Body.String(), `"version"`)
}

func TestSaveElementKeepsOtherFiles(t *testing.T) {
	t.Parallel()
	files := map[string]string{
		"app.json":                         `{"name": "nest"}`,
		"services/Outer/e.json":            svcDef,
		"services/Outer/index.js":          `exports.a = function () { return 1; };`,
		"services/Outer/notes.txt":         "kept",
		"services/Outer/Inner/e.json":      svcDef,
		"services/Outer/Inner/index.js":    `exports.b = function () { return 2; };`,
		"services/Outer/Inner/helper.js":   `exports.c = 3;`,
		"services/Outer/.editor-state.txt": "hidden, kept",
	}
	handler, dir := setupEditing(t, files, nil)
	v := versionOf(t, handler, "services.Outer")
	run(t, handler, scenario{method: "PUT", path: "/api/elements/services.Outer", wantStatus: 200, body: jsonBody(t, map[string]any{
		"definition": svcDef, "version": v, "files": map[string]string{"index.js": `exports.a = function () { return 10; };`}})})
	run(t, handler, scenario{method: "POST", path: "/api/services/services.Outer/a", wantStatus: 200, wantIn: []string{`"result":10`}})
	run(t, handler, scenario{method: "POST", path: "/api/services/services.Outer.Inner/b", wantStatus: 200, wantIn: []string{`"result":2`}})
	for name, want := range map[string]string{"notes.txt": "kept", "Inner/helper.js": "exports.c = 3;", ".editor-state.txt": "hidden, kept"} {
		b, err := os.ReadFile(filepath.Join(dir, "services/Outer", name))
		require.NoError(t, err, name)
		require.Equal(t, want, string(b))
	}
	// No staging directory is left behind.
	entries, err := os.ReadDir(filepath.Join(dir, "services"))
	require.NoError(t, err)
	for _, e := range entries {
		require.False(t, strings.HasPrefix(e.Name(), ".trellis"), "left behind: %s", e.Name())
	}
	// A file inside the nested element belongs to that element.
	run(t, handler, scenario{method: "PUT", path: "/api/elements/services.Outer?force=true", wantStatus: 400, body: jsonBody(t, map[string]any{
		"definition": svcDef, "files": map[string]string{"Inner/x.js": "exports.x = 1;"}}), wantIn: []string{"nested element"}})
	// Deleting an element that holds another is refused.
	run(t, handler, scenario{method: "DELETE", path: "/api/elements/services.Outer?force=true", wantStatus: 409, wantIn: []string{"Inner"}})
}

func TestSaveElementInvalid(t *testing.T) {
	t.Parallel()
	handler, dir := setupEditing(t, testApp, nil)
	before := versionOf(t, handler, "services.MathSvc")
	rec := run(t, handler, scenario{method: "PUT", path: "/api/elements/services.MathSvc", wantStatus: 422, body: jsonBody(t, map[string]any{
		"version":    before,
		"definition": "{\"title\": \"Math\",\n \"type\": \"services.NormalType\",\n \"timout\": \"1s\"}",
		"files":      map[string]string{"index.js": "exports.add = function (a, b) { return a + ; };"},
	}), wantIn: []string{`"code":"invalid_element"`, `"problems"`}})
	var body struct {
		Error struct {
			Details struct {
				Problems []struct {
					File, Code   string
					Line, Column int
				}
			}
		}
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	codes := map[string]string{}
	for _, p := range body.Error.Details.Problems {
		require.NotZero(t, p.Line, "%+v", p)
		require.NotZero(t, p.Column, "%+v", p)
		codes[p.Code] = p.File
	}
	require.Equal(t, "services/MathSvc/e.json", codes["unknown_field"], "every problem: %s", rec.Body.String())
	require.Equal(t, "services/MathSvc/index.js", codes["js_syntax"], "every problem: %s", rec.Body.String())
	// Nothing was written.
	require.Equal(t, before, versionOf(t, handler, "services.MathSvc"))
	b, err := os.ReadFile(filepath.Join(dir, "services/MathSvc/e.json"))
	require.NoError(t, err)
	require.Equal(t, testApp["services/MathSvc/e.json"], string(b))

}

// TestSaveElementBreakingAnother: the whole app is validated with the draft applied, so a save
// or delete that breaks another element is refused, with the problem where it shows.
func TestSaveElementBreakingAnother(t *testing.T) {
	t.Parallel()
	files := map[string]string{}
	for k, v := range testApp {
		files[k] = v
	}
	files["tasks/UsesAdd/e.json"] = `{"title": "Uses add", "type": "tasks.NormalType", "funcName": "services.MathSvc.add"}`
	handler, dir := setupEditing(t, files, nil)
	v := versionOf(t, handler, "services.MathSvc")
	run(t, handler, scenario{method: "PUT", path: "/api/elements/services.MathSvc", wantStatus: 422, body: jsonBody(t, map[string]any{
		"version": v, "definition": testApp["services/MathSvc/e.json"], "files": map[string]string{"index.js": "exports.sub = function (a, b) { return a - b; };"}}),
		wantIn: []string{"invalid_element", `"file":"tasks/UsesAdd/e.json"`, `"code":"missing_function"`}})
	run(t, handler, scenario{method: "DELETE", path: "/api/elements/services.MathSvc?version=" + v, wantStatus: 422,
		wantIn: []string{"invalid_element", `"file":"tasks/UsesAdd/e.json"`}})
	require.Equal(t, v, versionOf(t, handler, "services.MathSvc"), "nothing was written")
	require.FileExists(t, filepath.Join(dir, "services/MathSvc/index.js"))
}

func TestSaveElementPaths(t *testing.T) {
	t.Parallel()
	outside := t.TempDir()
	handler, dir := setupEditing(t, testApp, func(c *host.Config) { c.DataDir = filepath.Join(c.AppDir, "data") })
	require.NoError(t, os.Symlink(outside, filepath.Join(dir, "linked")))
	require.NoError(t, os.MkdirAll(filepath.Join(outside, "X"), 0o755))
	require.NoError(t, os.Symlink(filepath.Join(outside, "X"), filepath.Join(dir, "services", "Linked")))
	// A symlinked directory inside an element, pointing out of the app.
	require.NoError(t, os.Symlink(filepath.Join(outside, "X"), filepath.Join(dir, "services", "MathSvc", "lib")))
	put := func(files map[string]string) string {
		return jsonBody(t, map[string]any{"definition": svcDef, "files": files})
	}
	for _, sc := range []scenario{
		{name: "parent dir", path: "/api/elements/services.P1", body: put(map[string]string{"../x.js": "1"}), wantIn: []string{"not a plain relative name"}},
		{name: "parent dir inside", path: "/api/elements/services.P2", body: put(map[string]string{"lib/../../x.js": "1"})},
		{name: "absolute", path: "/api/elements/services.P3", body: put(map[string]string{"/etc/x.js": "1"})},
		{name: "backslash", path: "/api/elements/services.P4", body: put(map[string]string{`..\x.js`: "1"})},
		{name: "NUL", path: "/api/elements/services.P5", body: put(map[string]string{"x\x00.js": "1"})},
		{name: "percent-encoded dots", path: "/api/elements/services.P6", body: put(map[string]string{"%2e%2e/x.js": "1"})},
		{name: "fullwidth dots", path: "/api/elements/services.P7", body: put(map[string]string{"\uff0e\uff0e/x.js": "1"})},
		{name: "one dot leader (NFKC ..)", path: "/api/elements/services.P8", body: put(map[string]string{"\u2025/x.js": "1"})},
		{name: "combining dot after NFC", path: "/api/elements/services.P9", body: put(map[string]string{".\u0307./x.js": "1"})},
		{name: ".trellis", path: "/api/elements/services.P10", body: put(map[string]string{".trellis/x.js": "1"})},
		{name: "hidden file", path: "/api/elements/services.P11", body: put(map[string]string{".x.js": "1"})},
		{name: "empty segment", path: "/api/elements/services.P12", body: put(map[string]string{"lib//x.js": "1"})},
		{name: "e.json among files", path: "/api/elements/services.P13", body: put(map[string]string{"e.json": "{}"}), wantIn: []string{"send it as definition"}},
		{name: "not an element file", path: "/api/elements/services.P14", body: put(map[string]string{"run.sh": "rm -rf /"}), wantIn: []string{".js, .json and .md"}},
		{name: "node_modules", path: "/api/elements/services.P15", body: put(map[string]string{"node_modules/x.js": "1"})},
		{name: "symlinked directory on the path", path: "/api/elements/linked.Evil", body: put(map[string]string{"index.js": "1"}), wantIn: []string{"symlink"}},
		{name: "symlinked element directory", path: "/api/elements/services.Linked", body: put(map[string]string{"index.js": "1"}), wantIn: []string{"symlink"}},
		{name: "symlinked directory inside the element", path: "/api/elements/services.MathSvc?force=true", body: put(map[string]string{"lib/x.js": "1"}), wantIn: []string{"lib in the element is a symlink"}},
		{name: "symlinked directory inside the element, draft run", path: "/api/elements/services.MathSvc/run", method: "POST",
			body: jsonBody(t, map[string]any{"definition": svcDef, "files": map[string]string{"lib/x.js": "1"}, "function": "f"}), wantIn: []string{"lib in the element is a symlink"}},
		{name: "a file over a directory", path: "/api/elements/services.MathSvc?force=true", body: put(map[string]string{"lib": "1"}), wantIn: []string{".js, .json and .md"}},
		{name: "the data directory", path: "/api/elements/data.X", body: put(map[string]string{"index.js": "1"}), wantIn: []string{"data directory"}},
		{name: "encoded path in the fullName", path: "/api/elements/services.%2e%2e", body: put(nil), wantIn: []string{"not an element fullName"}},
		{name: "definition missing", path: "/api/elements/services.P16", body: `{"files": {}}`, wantIn: []string{"definition is required"}},
		{name: "file not a string", path: "/api/elements/services.P17", body: `{"definition": "{}", "files": {"a.js": 1}}`, wantIn: []string{"must be the file's text"}},
		{name: "unknown body field", path: "/api/elements/services.P18", body: `{"definition": "{}", "mode": 1}`, wantIn: []string{`unknown field \"mode\"`}},
		{name: "bad force", path: "/api/elements/services.P19?force=yes", body: put(nil), wantIn: []string{"force"}},
	} {
		if sc.method == "" {
			sc.method = "PUT"
		}
		sc.wantStatus = 400
		t.Run(sc.name, func(t *testing.T) { run(t, handler, sc) })
	}
	t.Run("oversized body", func(t *testing.T) {
		run(t, handler, scenario{method: "PUT", path: "/api/elements/services.Big", wantStatus: 413,
			body: put(map[string]string{"index.js": strings.Repeat("x", 1<<17)}), wantIn: []string{"body_too_large"}})
	})
	// Nothing of the refused drafts reached the disk, nor outside the app.
	entries, err := os.ReadDir(filepath.Join(dir, "services"))
	require.NoError(t, err)
	names := []string{}
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.ElementsMatch(t, []string{"MathSvc", "Linked"}, names)
	left, err := os.ReadDir(filepath.Join(outside, "X"))
	require.NoError(t, err)
	require.Empty(t, left)
	require.NoDirExists(t, filepath.Join(dir, "data", "X"))
}

func TestDeleteElement(t *testing.T) {
	t.Parallel()
	handler, dir := setupEditing(t, testApp, nil)
	// An app override of a built-in.
	override := `{"title": "My signals", "type": "signals.Meta", "schema": {}}`
	run(t, handler, scenario{method: "PUT", path: "/api/elements/signals.NormalType", wantStatus: 201, body: jsonBody(t, map[string]any{"definition": override})})
	run(t, handler, scenario{method: "GET", path: "/api/elements/signals.NormalType", wantStatus: 200, wantIn: []string{`"origin":"app"`, `"overrides":"builtin"`}})
	v := versionOf(t, handler, "signals.NormalType")

	for _, sc := range []scenario{
		{name: "built-in", path: "/api/elements/events.NormalType?force=true", wantStatus: 409, wantIn: []string{"builtin element", "override it instead"}},
		{name: "unknown", path: "/api/elements/services.Nope?force=true", wantStatus: 404, wantIn: []string{"services.Nope"}},
		{name: "no version", path: "/api/elements/signals.NormalType", wantStatus: 409, wantIn: []string{"send the version", `"version":"` + v + `"`}},
		{name: "stale version", path: "/api/elements/signals.NormalType?version=0123", wantStatus: 409, wantIn: []string{"changed since version 0123"}},
		{name: "hostile name", path: "/api/elements/..%2Fapp", wantStatus: 400},
		{name: "override restores the built-in", path: "/api/elements/signals.NormalType?version=" + v, wantStatus: 200, wantIn: []string{`"deleted":true`, `"restored":"builtin"`}},
	} {
		sc.method = "DELETE"
		t.Run(sc.name, func(t *testing.T) { run(t, handler, sc) })
	}
	run(t, handler, scenario{method: "GET", path: "/api/elements/signals.NormalType", wantStatus: 200, wantIn: []string{`"origin":"builtin"`}})
	require.NoDirExists(t, filepath.Join(dir, "signals/NormalType"))

	// Deleting a service takes it out of the running app.
	v = versionOf(t, handler, "services.MathSvc")
	run(t, handler, scenario{method: "DELETE", path: "/api/elements/services.MathSvc?version=" + v, wantStatus: 200})
	run(t, handler, scenario{method: "POST", path: "/api/services/services.MathSvc/add", body: `[1, 2]`, wantStatus: 404})
	require.NoDirExists(t, filepath.Join(dir, "services/MathSvc"))
	entries, err := os.ReadDir(filepath.Join(dir, "services"))
	require.NoError(t, err)
	require.Empty(t, entries, "no trash left behind")
}

// TestEditWithoutEditor: a server whose deps cannot edit says so.
func TestEditWithoutEditor(t *testing.T) {
	t.Parallel()
	h := setupEditingDeps(t)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("DELETE", "/api/elements/services.MathSvc?force=true", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	h.ServeHTTP(rec, req)
	require.Equal(t, 503, rec.Code, rec.Body.String())
}

// appOnly hides every method of the host but App's, so the server finds no Editor.
type appOnly struct{ App }

func setupEditingDeps(t *testing.T) http.Handler {
	t.Helper()
	h, err := host.New(host.Config{AppDir: writeApp(t, testApp), Sandbox: host.SandboxInProcess}, backends.Open)
	require.NoError(t, err)
	d := depsOf(h)
	d.App = appOnly{h}
	srv, err := New(d, Options{Token: testToken})
	require.NoError(t, err)
	return srv.Handler()
}
