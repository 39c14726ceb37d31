package registry

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// The seed's pattern: an app's own events.services.EventSvc replaces the built-in one, which
// stays reachable in Builtin (app.getBuiltin).
func TestOverrideBuiltin(t *testing.T) {
	t.Parallel()
	s := mustLoad(t, opts(newApp(t, map[string]string{
		"events/services/EventSvc/e.json":   `{"title": "My event service", "type": "services.NormalType", "functionList": [{"name": "sendEvent"}]}`,
		"events/services/EventSvc/index.js": "const base = app.getBuiltin('events.services.EventSvc')\nexports.sendEvent = function (a) { return base.sendEvent(a) }\n",
	})))
	e := s.Elements["events.services.EventSvc"]
	require.Equal(t, OriginApp, e.Origin)
	require.Equal(t, OriginBuiltin, e.Overrides)
	require.Equal(t, "My event service", e.Title)
	require.False(t, e.Native)
	require.Equal(t, []string{"sendEvent"}, e.Exports)
	b := s.Builtin["events.services.EventSvc"]
	require.True(t, b.Native)
	require.Equal(t, OriginBuiltin, b.Origin)
	require.NotSame(t, b, e)
	require.Equal(t, OriginBuiltin, s.Elements["services.TaskSvc"].Origin)
}

// An app may override a built-in Type (the seed: "改写 services.NormalType"); its instances,
// the built-in ones included, then resolve through the app's version.
func TestOverrideBuiltinType(t *testing.T) {
	t.Parallel()
	s := mustLoad(t, opts(newApp(t, map[string]string{
		"services/NormalType/e.json": `{"title": "Our service", "type": "services.Meta", "schema": {"owner": {"type": "string", "default": "platform"}}}`,
		"services/S/e.json":          `{"type": "services.NormalType", "owner": "team-a"}`,
	})))
	require.Equal(t, OriginBuiltin, s.Elements["services.NormalType"].Overrides)
	require.Equal(t, "team-a", s.Elements["services.S"].Definition["owner"])
	require.Equal(t, "platform", s.Elements["services.TaskSvc"].Definition["owner"])
	require.NotContains(t, s.Builtin["services.TaskSvc"].Definition, "owner", "the built-in view is unaffected")
}

// A user Type adds schema on top of its Meta's and gives its instances default values.
func TestUserType(t *testing.T) {
	t.Parallel()
	s := mustLoad(t, opts(newApp(t, map[string]string{
		"events/AuditType/e.json":    `{"type": "events.Meta", "schema": {"sender": {"type": "string", "required": true}, "level": {"type": "string", "enum": ["info", "warn"], "default": "info"}}, "handlerType": "broadcast", "broadcastIdentifier": "host", "loader": "loader.js"}`,
		"events/AuditType/loader.js": "exports.load = function (element, app) { return {} }\n",
		"events/Audit/e.json":        `{"type": "events.AuditType", "sender": "*", "level": "warn"}`,
		"events/Audit/index.js":      eventJS,
	})))
	a := s.Elements["events.Audit"]
	require.Equal(t, LayerInstance, a.Layer)
	require.Equal(t, "events.Meta", a.Meta)
	require.Equal(t, "broadcast", a.Definition["handlerType"], "from the Type's values")
	require.Equal(t, "host", a.Definition["broadcastIdentifier"])
	require.Equal(t, "warn", a.Definition["level"])
	require.Equal(t, "handle", a.Definition["handler"], "from the Meta's schema")
	require.NotContains(t, a.Definition, "loader", "universal keys of the Type are its own")
	require.True(t, s.IsA("events.Audit", "events.Meta"))
	require.False(t, s.IsA("events.Audit", "events.NormalType"))
	require.Equal(t, LayerType, s.Elements["events.AuditType"].Layer)
}

// extends: the app's own elements, then each extended app in order, depth-first, then
// built-ins; the first one found wins.
func TestExtendsResolution(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"app/app.json":                         `{"name": "app", "extends": ["../base", "../other"], "env": {"A": "app"}}`,
		"app/services/Shared/e.json":           `{"type": "services.NormalType", "title": "from app"}`,
		"app/commons/util.js":                  "exports.who = () => 'app'\n",
		"base/app.json":                        `{"name": "base", "extends": ["../deep"], "env": {"A": "base", "B": "base"}}`,
		"base/services/Shared/e.json":          `{"type": "services.NormalType", "title": "from base"}`,
		"base/services/Base/e.json":            `{"type": "services.NormalType", "title": "from base"}`,
		"base/events/services/EventSvc/e.json": `{"type": "services.NormalType", "title": "base's EventSvc"}`,
		"base/commons/util.js":                 "exports.who = () => 'base'\n",
		"base/commons/baseonly.js":             "exports.x = 1\n",
		"deep/app.json":                        `{"name": "deep", "env": {"C": "deep"}}`,
		"deep/services/Deep/e.json":            `{"type": "services.NormalType", "title": "from deep"}`,
		"deep/services/Twice/e.json":           `{"type": "services.NormalType", "title": "from deep"}`,
		"other/app.json":                       `{"name": "other", "extends": ["../deep"]}`,
		"other/services/Twice/e.json":          `{"type": "services.NormalType", "title": "from other"}`,
		"other/services/Other/e.json":          `{"type": "services.NormalType", "title": "from other"}`,
	})
	s := mustLoad(t, opts(filepath.Join(root, "app")))
	got := func(n string) (string, Origin, Origin) {
		e := s.Elements[n]
		require.NotNil(t, e, n)
		return e.Title, e.Origin, e.Overrides
	}
	check := func(n, title string, origin, over Origin) {
		t.Helper()
		gt, go_, gov := got(n)
		require.Equal(t, []any{title, origin, over}, []any{gt, go_, gov}, n)
	}
	check("services.Shared", "from app", OriginApp, OriginParent)
	check("services.Base", "from base", OriginParent, "")
	check("services.Deep", "from deep", OriginParent, "")
	check("services.Twice", "from deep", OriginParent, OriginParent) // base's extends come before other
	check("services.Other", "from other", OriginParent, "")
	check("events.services.EventSvc", "base's EventSvc", OriginParent, OriginBuiltin)
	deepDir, err := filepath.EvalSymlinks(filepath.Join(root, "deep"))
	require.NoError(t, err)
	require.Equal(t, deepDir, s.Elements["services.Deep"].AppDir)
	require.Equal(t, "services/Deep", s.Elements["services.Deep"].Dir)
	require.Equal(t, "exports.who = () => 'app'\n", s.Commons["commons/util.js"])
	require.Equal(t, "exports.x = 1\n", s.Commons["commons/baseonly.js"])
	require.Equal(t, map[string]string{"A": "app", "B": "base", "C": "deep"}, s.App.Env)
	require.Equal(t, "app", s.App.Name)
	require.Equal(t, []string{"../base", "../other"}, s.App.Extends)
}

// Problems in an extended app are reported with paths relative to the loaded app.
func TestExtendsProblemsPaths(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"app/app.json":           `{"name": "app", "extends": ["../base"]}`,
		"base/app.json":          `{"name": "base"}`,
		"base/events/E/e.json":   `{"type": "events.NormalType", "sender": "a"}`,
		"base/events/E/index.js": "exports.handle = (\n",
	})
	ps := Check(opts(filepath.Join(root, "app")))
	require.Len(t, ps, 1)
	require.Equal(t, "../base/events/E/index.js:2:1: js_syntax", where(ps[0]))
}

func TestExtendsProblems(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		files map[string]string
		want  []string
		msg   string
	}{
		{"cycle", map[string]string{
			"app/app.json":  `{"name": "app", "extends": ["../base"]}`,
			"base/app.json": "{\"name\": \"base\",\n \"extends\": [\"../app\"]}"},
			[]string{"../base/app.json:2:14: extends_cycle"}, "app → base → app"},
		{"self", map[string]string{"app/app.json": `{"name": "app", "extends": ["."]}`},
			[]string{"app.json:1:29: extends_cycle"}, "cannot extend itself"},
		{"missing", map[string]string{"app/app.json": `{"name": "app", "extends": ["../nope"]}`},
			[]string{"app.json:1:29: bad_extends"}, "cannot be opened"},
		{"absolute", map[string]string{"app/app.json": `{"name": "app", "extends": ["/srv/base"]}`},
			[]string{"app.json:1:29: bad_extends"}, "relative"},
		{"parent without app.json", map[string]string{"app/app.json": `{"name": "app", "extends": ["../base"]}`, "base/x.txt": "x"},
			[]string{"../base/app.json: no_app"}, "app.json not found"},
		{"diamond is not a cycle", map[string]string{
			"app/app.json": `{"name": "app", "extends": ["../b", "../c"]}`,
			"b/app.json":   `{"name": "b", "extends": ["../d"]}`,
			"c/app.json":   `{"name": "c", "extends": ["../d"]}`,
			"d/app.json":   `{"name": "d"}`}, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			writeFiles(t, root, tc.files)
			ps := Check(opts(filepath.Join(root, "app")))
			var got []string
			for _, p := range ps {
				got = append(got, where(p))
			}
			require.Equal(t, tc.want, got, "%v", ps)
			if tc.msg != "" {
				require.Contains(t, ps[0].Message, tc.msg)
			}
		})
	}
}

// A bad extends entry is one problem among all the others: the app's elements (and those of
// the apps it does extend) are still read and checked, so one check lists everything.
func TestBadExtendsReportsEveryProblem(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"app/app.json":             "{\"name\": \"app\",\n \"extends\": [\"../base\", \"../nope\"]}",
		"app/events/E/e.json":      `{"type": "events.NormalType"}`,
		"app/events/E/index.js":    eventJS,
		"app/services/S/e.json":    serviceJSON,
		"app/services/S/index.js":  "exports.broken = function ( {\n",
		"app/tasks/T/e.json":       `{"type": "tasks.NormalType", "repeatType": "interval", "interval": "1m", "funcName": "services.P.backupDatabase"}`,
		"base/app.json":            `{"name": "base"}`,
		"base/services/P/e.json":   serviceJSON,
		"base/services/P/index.js": serviceJS,
	})
	o := opts(filepath.Join(root, "app"))
	ps := Check(o)
	var got []string
	for _, p := range ps {
		got = append(got, where(p))
	}
	require.Equal(t, []string{
		"app.json:2:25: bad_extends",
		"events/E/e.json:1:1: missing_field",
		"services/S/index.js:2:1: js_syntax",
	}, got, "the task's funcName in the base app that does load resolves: %v", ps)
	require.Contains(t, ps[0].Message, `"../nope" cannot be opened`)

	_, err := Load(o)
	var ve *ValidationError
	require.ErrorAs(t, err, &ve)
	require.Equal(t, ps, ve.Problems, "Load fails with the same list")
}

// Dot-directories (the host's .trellis data) and node_modules are never elements.
func TestIgnoredDirectories(t *testing.T) {
	t.Parallel()
	s := mustLoad(t, opts(newApp(t, map[string]string{
		".trellis/db/e.json":               "garbage",
		"services/.cache/e.json":           "garbage",
		"node_modules/x/e.json":            "garbage",
		"services/S/e.json":                serviceJSON,
		"services/S/node_modules/y/e.json": "garbage",
		"services/S/lib/util.js":           "exports.u = 1\n",
		"services/S/README.md":             "# S\n",
		"services/S/logo.png":              "\x89PNG",
		"services/S/Nested/e.json":         serviceJSON,
		"services/S/Nested/index.js":       serviceJS,
	})))
	require.Equal(t, []string{"README.md", "e.json", "lib/util.js"}, sortedKeys(s.Elements["services.S"].Files), "nested elements and other file kinds excluded")
	require.Equal(t, []string{"e.json", "index.js"}, sortedKeys(s.Elements["services.S.Nested"].Files))
	for n := range s.Elements {
		require.NotContains(t, n, "trellis")
		require.NotContains(t, n, "node_modules")
	}
}

// Static analysis follows module.exports = require("./impl") and commons re-exports.
func TestExportsFollowRequire(t *testing.T) {
	t.Parallel()
	s := mustLoad(t, opts(newApp(t, map[string]string{
		"services/S/e.json":      `{"type": "services.NormalType", "functionList": [{"name": "a"}, {"name": "b"}]}`,
		"services/S/index.js":    "module.exports = require('./lib/impl')\n",
		"services/S/lib/impl.js": "exports.a = function () {}\nexports.b = () => 1\n",
		"services/T/e.json":      `{"type": "services.NormalType", "functionList": [{"name": "shared"}]}`,
		"services/T/index.js":    "module.exports = require('commons/shared')\n",
		"commons/shared.js":      "exports.shared = function () {}\n",
	})))
	require.Equal(t, []string{"a", "b"}, s.Elements["services.S"].Exports)
	require.Equal(t, []string{"shared"}, s.Elements["services.T"].Exports)
}

func TestEntry(t *testing.T) {
	t.Parallel()
	s := mustLoad(t, opts(newApp(t, map[string]string{
		"events/E/e.json":      `{"type": "events.NormalType", "sender": "a", "entry": "./src/main.js"}`,
		"events/E/src/main.js": eventJS,
	})))
	require.Equal(t, "src/main.js", s.Elements["events.E"].Entry)
	require.Equal(t, []string{"handle"}, s.Elements["events.E"].Exports)
}

func TestAppDirIsResolved(t *testing.T) {
	t.Parallel()
	dir := newApp(t, nil)
	link := filepath.Join(t.TempDir(), "link")
	require.NoError(t, os.Symlink(dir, link))
	s := mustLoad(t, opts(link))
	real, err := filepath.EvalSymlinks(dir)
	require.NoError(t, err)
	require.Equal(t, real, s.App.Dir)
	require.Equal(t, "testapp", s.App.Name)
}

// Numbers in e.json are float64 for every reader of definitions, but an integer a float64 cannot
// hold stays an exact int64 (an id in a template's argDict).
func TestDefinitionNumbersPastTwoTo53StayExact(t *testing.T) {
	t.Parallel()
	s := mustLoad(t, opts(newApp(t, map[string]string{
		"services/S/e.json":   `{"type": "services.NormalType", "functionList": [{"name": "f", "args": [{"name": "x", "default": 9007199254740993}, {"name": "y", "default": 2.5}, {"name": "z", "default": 7}]}]}`,
		"services/S/index.js": "exports.f = function () {}\n",
	})))
	args := s.Elements["services.S"].Definition["functionList"].([]any)[0].(map[string]any)["args"].([]any)
	require.Equal(t, int64(9007199254740993), args[0].(map[string]any)["default"])
	require.Equal(t, 2.5, args[1].(map[string]any)["default"])
	require.Equal(t, float64(7), args[2].(map[string]any)["default"])
}

func TestSameFiles(t *testing.T) {
	t.Parallel()
	dir := newApp(t, map[string]string{
		"services/S/e.json":   `{"type": "services.NormalType"}`,
		"services/S/index.js": "exports.f = function () { return 1 }\n",
		"commons/x.js":        "exports.x = 1\n",
	})
	a, b := mustLoad(t, opts(dir)), mustLoad(t, opts(dir))
	require.True(t, a.SameFiles(b), "two loads of unchanged files")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "services/S/index.js"), []byte("exports.f = function () { return 2 }\n"), 0o644))
	require.False(t, a.SameFiles(mustLoad(t, opts(dir))), "an element's file changed")
	c := mustLoad(t, opts(dir))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "commons/x.js"), []byte("exports.x = 2\n"), 0o644))
	require.False(t, c.SameFiles(mustLoad(t, opts(dir))), "a commons file changed")
}
