package web

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// checkProblem is a problem as POST /api/elements/{fullName}/check and the 422 of a save answer
// it.
type checkProblem struct {
	Element, File, Code, Message string
	Line, Column                 int
}

func checkProblems(t *testing.T, body []byte) []checkProblem {
	t.Helper()
	var out struct {
		Problems *[]checkProblem `json:"problems"`
	}
	require.NoError(t, json.Unmarshal(body, &out), string(body))
	require.NotNil(t, out.Problems, "problems is always a list: %s", body)
	return *out.Problems
}

// TestCheckDraft: the check route runs the validation of a save on the draft, writes nothing,
// and answers every problem with its file, line and column — the same a save's 422 lists.
func TestCheckDraft(t *testing.T) {
	t.Parallel()
	files := map[string]string{}
	for k, v := range testApp {
		files[k] = v
	}
	files["tasks/UsesAdd/e.json"] = `{"title": "Uses add", "type": "tasks.NormalType", "funcName": "services.MathSvc.add"}`
	handler, dir := setupEditing(t, files, nil)
	before := versionOf(t, handler, "services.MathSvc")
	check := func(t *testing.T, name string, body any, wantStatus int, wantIn ...string) []checkProblem {
		t.Helper()
		b, ok := body.(string)
		if !ok {
			b = jsonBody(t, body)
		}
		rec := run(t, handler, scenario{method: "POST", path: "/api/elements/" + name + "/check", body: b, wantStatus: wantStatus, wantIn: wantIn})
		if wantStatus != 200 {
			return nil
		}
		return checkProblems(t, rec.Body.Bytes())
	}

	t.Run("a valid draft has no problems", func(t *testing.T) {
		ps := check(t, "services.MathSvc", map[string]any{"definition": testApp["services/MathSvc/e.json"],
			"files": map[string]string{"index.js": "exports.add = function (a, b) { return a + b + 1; };"}}, 200, `{"problems":[]}`)
		require.Empty(t, ps)
	})

	t.Run("every problem at its line and column, as a save's 422", func(t *testing.T) {
		draft := map[string]any{
			"definition": "{\"title\": \"Math\",\n \"type\": \"services.NormalType\",\n \"timout\": \"1s\"}",
			"files":      map[string]string{"index.js": "exports.add = function (a, b) {\n  return a + ;\n};"},
		}
		ps := check(t, "services.MathSvc", draft, 200)
		byCode := map[string]checkProblem{}
		for _, p := range ps {
			byCode[p.Code] = p
		}
		require.Equal(t, checkProblem{Element: "services.MathSvc", File: "services/MathSvc/e.json", Code: "unknown_field", Line: 3, Column: 2,
			Message: byCode["unknown_field"].Message}, byCode["unknown_field"], "%+v", ps)
		js := byCode["js_syntax"]
		require.Equal(t, "services/MathSvc/index.js", js.File, "%+v", ps)
		require.Equal(t, 2, js.Line, "%+v", js)
		require.NotZero(t, js.Column)

		// A save of the same draft is refused with the same problems.
		save := map[string]any{"version": before}
		for k, v := range draft {
			save[k] = v
		}
		rec := run(t, handler, scenario{method: "PUT", path: "/api/elements/services.MathSvc", body: jsonBody(t, save), wantStatus: 422})
		var refused struct {
			Error struct{ Details json.RawMessage }
		}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &refused))
		require.Equal(t, ps, checkProblems(t, refused.Error.Details))
	})

	t.Run("a draft breaking another element", func(t *testing.T) {
		ps := check(t, "services.MathSvc", map[string]any{"definition": testApp["services/MathSvc/e.json"],
			"files": map[string]string{"index.js": "exports.sub = function (a, b) { return a - b; };"}}, 200, `"file":"tasks/UsesAdd/e.json"`, `"code":"missing_function"`)
		require.Len(t, ps, 1, "%+v", ps)
	})

	t.Run("definition as an object", func(t *testing.T) {
		check(t, "services.MathSvc", map[string]any{"definition": map[string]any{"title": "Math", "type": "services.NormalType", "retries": 3},
			"files": map[string]string{"index.js": testApp["services/MathSvc/index.js"]}}, 200, `"code":"unknown_field"`, `"file":"services/MathSvc/e.json"`)
	})

	t.Run("a new element, and a Type, need not exist nor run", func(t *testing.T) {
		check(t, "services.Fresh", map[string]any{"definition": `{"title": "Fresh", "type": "services.NormalType"}`,
			"files": map[string]string{"index.js": "exports.f = function () {"}}, 200, `"file":"services/Fresh/index.js"`, `"code":"js_syntax"`)
		require.Empty(t, check(t, "services.Fresh", map[string]any{"definition": `{"title": "Fresh", "type": "services.NormalType"}`}, 200))
		require.Empty(t, check(t, "services.MyType", map[string]any{"definition": `{"title": "My type", "type": "services.Meta"}`}, 200))
	})

	for _, bad := range []struct {
		name, body string
		wantIn     string
	}{
		{"not JSON", `{"definition": `, "not valid JSON"},
		{"an array", `[{"definition": "{}"}]`, "send a JSON object"},
		{"a string", `"{}"`, "send a JSON object"},
		{"empty body", ``, "not valid JSON"},
		{"no definition", `{"files": {}}`, "definition is required"},
		{"definition a number", `{"definition": 42}`, "definition must be"},
		{"definition an array", `{"definition": ["{}"]}`, "definition must be"},
		{"files an array", `{"definition": "{}", "files": ["index.js"]}`, "files must be"},
		{"a file not a string", `{"definition": "{}", "files": {"index.js": 1}}`, "must be the file's text"},
		{"unknown field", `{"definition": "{}", "version": "x"}`, `unknown field \"version\"`},
		{"parent directory", `{"definition": "{}", "files": {"../x.js": "1"}}`, "plain relative name"},
		{"absolute path", `{"definition": "{}", "files": {"/etc/passwd.js": "1"}}`, "plain relative name"},
		{"climbing out", `{"definition": "{}", "files": {"lib/../../../x.js": "1"}}`, "plain relative name"},
		{"backslash", `{"definition": "{}", "files": {"..\\x.js": "1"}}`, "plain relative name"},
		{"hidden file", `{"definition": "{}", "files": {".x.js": "1"}}`, "plain relative name"},
		{"not a code file", `{"definition": "{}", "files": {"run.sh": "rm -rf /"}}`, ".js, .json and .md"},
		{"e.json among files", `{"definition": "{}", "files": {"e.json": "{}"}}`, "send it as definition"},
	} {
		t.Run("bad input: "+bad.name, func(t *testing.T) {
			check(t, "services.MathSvc", bad.body, 400, `"code":"invalid_argument"`, bad.wantIn)
		})
	}
	t.Run("bad input: not a fullName", func(t *testing.T) {
		check(t, "services..X", map[string]any{"definition": "{}"}, 400, "not an element fullName")
		check(t, "%2e%2e", map[string]any{"definition": "{}"}, 400, "not an element fullName")
	})
	t.Run("bad input: oversized body", func(t *testing.T) {
		big := map[string]any{"definition": svcDef, "files": map[string]string{"index.js": "// " + strings.Repeat("x", 1<<16)}}
		check(t, "services.MathSvc", big, 413, `"code":"body_too_large"`)
	})
	t.Run("GET is not the route", func(t *testing.T) {
		rec := run(t, handler, scenario{method: "GET", path: "/api/elements/services.MathSvc/check", wantStatus: 404})
		require.NotContains(t, rec.Body.String(), "problems")
	})

	// Nothing was written, created or run.
	require.Equal(t, before, versionOf(t, handler, "services.MathSvc"))
	b, err := os.ReadFile(filepath.Join(dir, "services/MathSvc/index.js"))
	require.NoError(t, err)
	require.Equal(t, testApp["services/MathSvc/index.js"], string(b))
	require.NoDirExists(t, filepath.Join(dir, "services/Fresh"))
	require.NoDirExists(t, filepath.Join(dir, "services/MyType"))
	run(t, handler, scenario{method: "GET", path: "/api/events/logs?fullName=services.MathSvc", wantStatus: 200, wantIn: []string{`"totalCount":0`}})
}

// TestCheckDraftWithoutDrafts: a server whose deps cannot check drafts says so.
func TestCheckDraftWithoutDrafts(t *testing.T) {
	t.Parallel()
	run(t, setupEditingDeps(t), scenario{method: "POST", path: "/api/elements/services.MathSvc/check",
		body: `{"definition": "{}"}`, wantStatus: 503, wantIn: []string{`"code":"unavailable"`}})
}
