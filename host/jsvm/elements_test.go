package jsvm

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDataElementIsFrozenDefinition(t *testing.T) {
	t.Parallel()
	def := map[string]any{"title": "Daily", "repeatType": "cron", "argDict": map[string]any{"list": []any{1}}}
	vm := setup(t, Options{}, source(
		&Element{FullName: "tasks.Daily", Kind: KindData, Definition: def},
		index("services.S", `"use strict"; exports.f = function () {
			const d = app.getElement("tasks.Daily");
			let threw = 0;
			for (const write of [() => { d.title = "x" }, () => { d.argDict.list.push(2) }, () => { d.argDict.n = 1 }]) {
				try { write() } catch (e) { threw++ }
			}
			return [d.title, d.argDict.list, threw, Object.isFrozen(d.argDict.list), module.element === undefined];
		}`),
		&Element{FullName: "services.WithDef", Kind: KindJS, Definition: map[string]any{"title": "Mine"},
			Files: map[string]string{"index.js": `exports.f = () => [module.element.title, Object.isFrozen(module.element)]`}},
	))
	require.Equal(t, []any{"Daily", []any{int64(1)}, int64(3), true, false}, mustRun(t, vm, "services.S", "f"))
	require.Equal(t, []any{"Mine", true}, mustRun(t, vm, "services.WithDef", "f"))
}

func TestLoaderBuildsTheRuntimeObject(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(
		&Element{FullName: "services.RestType", Kind: KindData, Definition: map[string]any{"title": "REST type"},
			Files: map[string]string{"loader.js": `
				let built = 0;
				class Client {
					constructor(def) { this.base = def.baseUrl; this.id = ++built }
					url(path) { return this.base + path }
					whoBuilt() { return [this.id, app.name] }
				}
				exports.load = (def, app) => new Client(def);`}},
		&Element{FullName: "services.GitHub", Kind: KindData, Loader: "services.RestType", Definition: map[string]any{"baseUrl": "https://api.github.com"}},
		index("services.S", `exports.f = function () {
			const gh = app.getElement("services.GitHub");
			return [gh.url("/repos"), gh.whoBuilt(), gh.base, typeof gh.constructor];
		}`),
	))
	got := mustRun(t, vm, "services.S", "f").([]any)
	require.Equal(t, "https://api.github.com/repos", got[0])
	require.Equal(t, "testapp", got[1].([]any)[1])
	require.Equal(t, "https://api.github.com", got[2])
	require.Equal(t, "function", got[3], "constructor is Object's, from the proxy's own prototype")
	// Execute addresses a loader-built element directly too.
	require.Equal(t, "https://api.github.com/x", mustRun(t, vm, "services.GitHub", "url", "/x"))
}

// The levels and formats of console logs are in jsvmtest (ConsoleLogs); an execution's logs are
// capped at Limits.MaxConsoleBytes, the last entry saying so.
func TestConsoleIsCapped(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(index("services.L", `
		exports.flood = () => { const s = "x".repeat(1000); for (let i = 0; i < 5000; i++) console.log(s); return "done" };`)))
	res, err := run(t, vm, "services.L", "flood")
	require.NoError(t, err)
	require.Equal(t, "done", res.Value)
	total := 0
	for _, l := range res.Logs {
		total += len(l.Message)
	}
	require.LessOrEqual(t, total, int(DefaultLimits.MaxConsoleBytes)+200)
	require.Contains(t, res.Logs[len(res.Logs)-1].Message, "truncated")
}

func TestWarmRuntimeKeepsModuleStatePerElement(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{MaxIdlePerElement: 1}, source(
		index("services.C", `let n = 0; exports.next = () => ++n;`),
		index("services.D", `let n = 100; exports.next = () => ++n;`),
	))
	require.EqualValues(t, 1, mustRun(t, vm, "services.C", "next"))
	require.EqualValues(t, 2, mustRun(t, vm, "services.C", "next"))
	require.EqualValues(t, 101, mustRun(t, vm, "services.D", "next"))
	require.EqualValues(t, 3, mustRun(t, vm, "services.C", "next"))
}

func TestLoaderWithInstanceCode(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(
		&Element{FullName: "services.WrapType", Kind: KindData, Definition: map[string]any{"loader": "lib/make.js"},
			Files: map[string]string{"lib/make.js": `exports.load = (def, app, own) => ({
				describe: () => def.title + ": " + own.helper(2),
				title: def.title,
			})`}},
		&Element{FullName: "services.Inst", Kind: KindJS, Loader: "services.WrapType", Definition: map[string]any{"title": "Inst"},
			Files: map[string]string{"index.js": `exports.helper = n => n * 21; exports.handle = (e) => "handled " + e`}},
		index("services.S", `exports.f = () => { const i = app.getElement("services.Inst"); return [i.describe(), i.title, typeof i.handle] }`),
	))
	require.Equal(t, []any{"Inst: 42", "Inst", "undefined"}, mustRun(t, vm, "services.S", "f"))
	require.Equal(t, "Inst: 42", mustRun(t, vm, "services.Inst", "describe"))
	require.Equal(t, "handled x", mustRun(t, vm, "services.Inst", "handle", "x"), "a function the loader object lacks comes from the instance's own exports")
	require.Equal(t, CodeNotFound, runErr(t, vm, "services.Inst", "nope").Code)
}

// Load compiles only the files whose text changed since the last version: one slow file costs
// its own edit, not every later reload of other elements.
func TestLoadRecompilesOnlyChangedFiles(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(index("services.A", `exports.f = () => 1`), index("services.B", `exports.f = () => 2`)))
	prog := func(el string) any {
		return vm.current.Load().elements[el].modules[strings.ReplaceAll(el, ".", "/")+"/index.js"].prog
	}
	a1, b1 := prog("services.A"), prog("services.B")
	require.NoError(t, vm.Load(source(index("services.A", `exports.f = () => 1`), index("services.B", `exports.f = () => 3`))))
	require.Same(t, a1, prog("services.A"), "an unchanged file keeps its program")
	require.NotSame(t, b1, prog("services.B"), "a changed file is compiled again")
	require.Equal(t, int64(3), mustRun(t, vm, "services.B", "f"))
	require.Equal(t, int64(1), mustRun(t, vm, "services.A", "f"))
}

// A JSON module that starts with a byte-order mark loads, as the registry's check accepts it:
// it used to pass check and then keep the app from starting.
func TestJSONModuleWithByteOrderMark(t *testing.T) {
	t.Parallel()
	el := &Element{FullName: "services.J", Kind: KindJS, Files: map[string]string{
		"index.js": `const d = require("./data.json"); exports.f = () => d.a`, "data.json": "\uFEFF{\"a\": 1}"}}
	vm := setup(t, Options{}, source(el))
	require.Equal(t, int64(1), mustRun(t, vm, "services.J", "f"))
}
