package registry

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestExportsAnalysis(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		src  string
		want []string
	}{
		{"exports.x = function", "exports.a = function () {}\nexports.b = async function () {}\nexports.c = () => 1\n", []string{"a", "b", "c"}},
		{"exports.x = identifier", "function handle(e) {}\nexports.handle = handle\n", []string{"handle"}},
		{"bracket form", "exports['run'] = function () {}\n", []string{"run"}},
		{"module.exports.x", "module.exports.go = function () {}\n", []string{"go"}},
		{"module.exports object", "function a() {}\nmodule.exports = { a, b: function () {}, c() {}, 'd': () => 1, n: 42, s: 'x' }\n", []string{"a", "b", "c", "d"}},
		{"module.exports replaces earlier exports", "exports.old = function () {}\nmodule.exports = { fresh() {} }\n", []string{"fresh"}},
		{"module.exports = object variable", "const api = { a() {} }\napi.b = function () {}\nmodule.exports = api\n", []string{"a", "b"}},
		{"chained assignment", "exports.a = exports.b = function () {}\n", []string{"a", "b"}},
		{"sequence", "exports.a = function () {}, exports.b = function () {}\n", []string{"a", "b"}},
		{"Object.assign", "Object.assign(module.exports, { a() {}, b: () => 1 })\n", []string{"a", "b"}},
		{"non-functions are not function exports", "exports.n = 1\nexports.s = 'x'\nexports.o = {}\nconst k = 3\nexports.k = k\n", nil},
		{"nested assignments are not top-level exports", "function f() { exports.inner = function () {} }\nif (x) { exports.cond = function () {} }\n", nil},
		{"shorthand of a literal is not a function", "const n = 1\nfunction f() {}\nmodule.exports = { n, f }\n", []string{"f"}},
		{"top-level return is legal in a module", "exports.a = function () {}\nreturn\n", []string{"a"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			info := analyzeJS("index.js", tc.src)
			require.Empty(t, info.syntax)
			require.Equal(t, tc.want, info.exports)
		})
	}
}

func TestRequiresAnalysis(t *testing.T) {
	t.Parallel()
	info := analyzeJS("index.js", "const a = require('./a')\nfunction f() {\n  return require(\"commons/b\")\n}\nrequire(name)\nx.require('no')\n")
	require.Empty(t, info.syntax)
	require.Equal(t, []jsSpot{{line: 1, col: 19, msg: "./a"}, {line: 3, col: 18, msg: "commons/b"}}, info.requires)
}

func TestJSONPositions(t *testing.T) {
	t.Parallel()
	src := "{\n  \"名前\": \"値\", \"a/b\": {\"c\": [1, {\"d\": true}]}\n}"
	doc, issues := parseJSON(src)
	require.Empty(t, issues)
	l, c := doc.valuePos("名前")
	require.Equal(t, []int{2, 9}, []int{l, c})
	l, c = doc.keyPos("a~1b")
	require.Equal(t, []int{2, 14}, []int{l, c})
	l, c = doc.valuePos("a~1b/c/1/d")
	require.Equal(t, []int{2, 37}, []int{l, c})
	l, c = doc.valuePos("a~1b/c/1/missing")
	require.Equal(t, []int{2, 31}, []int{l, c}, "a missing key points at the object that should hold it")
}

func TestJSONByteOrderMark(t *testing.T) {
	t.Parallel()
	doc, issues := parseJSON("\uFEFF{\"a\": x}")
	require.Len(t, issues, 1)
	l, c := doc.lineCol(issues[0].offset)
	require.Equal(t, []int{1, 7}, []int{l, c}, "the mark is not a column")
	doc, issues = parseJSON("\uFEFF{\"a\": true}")
	require.Empty(t, issues)
	require.Equal(t, map[string]any{"a": true}, doc.value)
}
