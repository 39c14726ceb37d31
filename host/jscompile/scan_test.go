package jscompile

import (
	"fmt"
	"strings"
	"testing"

	"github.com/dop251/goja/parser"
	"github.com/stretchr/testify/require"
)

// Inputs that would overflow the parser's stack (fatal to the process) are refused before
// parsing; ordinary code, however long, is not.
func TestScanRefusesDeepNesting(t *testing.T) {
	t.Parallel()
	const n = 300_000 // ~600 KB: under MaxSourceBytes, and enough to crash goja's parser
	deep := map[string]string{
		"parentheses":       "exports.x = " + strings.Repeat("(", n) + "1" + strings.Repeat(")", n),
		"arrays":            "exports.x = " + strings.Repeat("[", n) + strings.Repeat("]", n),
		"objects":           "exports.x = " + strings.Repeat("{a:", n/2) + "1" + strings.Repeat("}", n/2),
		"assignment chain":  "var a; a" + strings.Repeat("=a", n),
		"conditional chain": "var a = 1" + strings.Repeat("?1:1", n/2),
		"arrow chain":       "var f = " + strings.Repeat("a=>", n) + "1",
		"template nesting":  "var s = " + strings.Repeat("`${", n/2) + "1" + strings.Repeat("}`", n/2),
		"logical not":       "exports.f = function () { return " + strings.Repeat("!", 1_000_000) + "1 };",
		"bitwise not":       "var a = " + strings.Repeat("~", n) + "1",
		"unary minus":       "var a = " + strings.Repeat("- ", n) + "1",
		"prefix increments": "var a = " + strings.Repeat("++", n) + "a",
		"typeof":            "var a = " + strings.Repeat("typeof ", n/4) + "a",
		"new":               "var a = " + strings.Repeat("new ", n/2) + "A",
		"exponent":          "var a = " + strings.Repeat("2**", n) + "2",
		"nested labels":     labels(n/4) + "x();",
		"class heritage":    "var C = " + strings.Repeat("class extends ", n/8) + "Object" + strings.Repeat("{}", n/8),
		"hidden after a regex misread as division": "if (x) /'/.test(y) + " + strings.Repeat("(", n) + "1" + strings.Repeat(")", n),
		"chain behind an unclosed quote":           "var a = 1 / 'x; a" + strings.Repeat("=a", n),
		// After "}" the scan assumes a block, so "/" starts a regular expression; here it is a
		// division, and each chunk of parentheses hides inside a "regular expression" short
		// enough to be skipped. Only the raw bracket count sees them.
		"hidden from the scan by regexp misreads": "x = " + strings.Repeat("{} /"+strings.Repeat("(", 4000)+"/ 1 + ", 100),
	}
	for name, src := range deep {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			off, _ := scanNesting(src)
			require.GreaterOrEqual(t, off, 0)
			_, _, p := Module("index.js", src)
			require.NotNil(t, p)
			require.Equal(t, KindNesting, p.Kind)
			require.Contains(t, p.Message, "nested more than 1000 levels")
			line, _ := p.Position(src)
			require.Equal(t, 1, line)
			require.NotNil(t, Check(src), "the same code given to eval")
		})
	}
	ok := map[string]string{
		"long flat code":          strings.Repeat("var a = b ? c : d; x = (y + z) * [1, 2][0];\n", 20_000),
		"brackets in strings":     strings.Repeat("var s = '((((((((((' + \"[[[[[[[[\" + `{{{{{{` + /[(]{3}/.source;\nif (s) /[(]/.test(s) && x.y / 2;\n", 1_000),
		"division and regexps":    strings.Repeat("var r = a / b / c, q = (a) / 2, t = /=+/g.test(s) ? x : y;\nr = -a - -b + +c, q = !a || !b, t = ~x;\n", 5_000),
		"comparisons and shifts":  strings.Repeat("if (a == b && c !== d && e <= f && g >= h && (i >>> 2) >= 0) {}\n", 5_000),
		"increments":              strings.Repeat("i++ + j++ - --k; x = a++ - b-- + c;\n", 5_000),
		"realistically nested":    "exports.handle = function (e) {\n" + strings.Repeat("if (e) {\n", 100) + strings.Repeat("}\n", 100) + "}\n",
		"template with ${} parts": strings.Repeat("var s = `a ${b ? `c ${d}` : e} f`;\n", 10_000),
		"keys, cases, ternaries":  strings.Repeat("var o = {a: 1, b: {c: x ? 2 : 3, d: [3]}}; switch (x) { case 1: y(); break; default: z() }\n", 5_000),
		"many typeofs":            strings.Repeat("if (typeof a === 'x' || typeof b === 'y') a = new A(new B());\n", 5_000),
	}
	for name, src := range ok {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			off, label := scanNesting(src)
			require.Equal(t, -1, off)
			require.Empty(t, label)
			_, _, p := Module("index.js", src)
			require.Nil(t, p)
		})
	}
}

func labels(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "l%d: ", i)
	}
	return b.String()
}

// goja's parser reports a label nested in one of the same name once per enclosing one, and
// keeps every error (1 MB of it held 24 GB): the scan refuses the first repeat instead, as the
// syntax error it is. Labels that merely look alike (in other functions, in sequence, object
// keys, cases) are not refused. goja agrees on each small case.
func TestScanRefusesRepeatedLabels(t *testing.T) {
	t.Parallel()
	for _, src := range []string{
		"a: a: x();",
		"a: { a: x(); }",
		"a: if (x) {} else a: y();",
		"a: if (x) {} /* c */ else { a: y(); }",
		"a: do a: x(); while (0)",
		"a: try { a: x(); } finally {}",
		"a: for (;;) { b: while (1) { a: break; } }",
		"switch (x) { case 1: a: a: y(); }",
		"class C { static { a: a: x(); } }",
		"exports.f = () => { a: a: x() };",
		"exports.f = function () { a: { a: ; } };",
	} {
		_, err := parser.ParseFile(nil, "", src, 0)
		require.Error(t, err, "goja refuses %q too", src)
		_, _, p := Module("index.js", src)
		require.NotNil(t, p, src)
		require.Equal(t, KindSyntax, p.Kind, src)
		require.Equal(t, "Label 'a' already exists", p.Message, src)
	}
	for _, src := range []string{
		"outer: for (;;) { break outer }\nouter: for (;;) { break outer }",
		"a: { (function () { a: for (;;) break a; })(); }",
		"a: { const f = () => { a: for (;;) break a; }; }",
		"a: { const o = { m() { a: for (;;) break a; } }; }",
		"a: x(); a: y();",
		"a: { x(); } a: { y(); }",
		"var o = { a: { a: { a: 1 } }, b: 2, a: 3 };",
		"switch (x) { case a: a: y(); break; default: a: z(); }",
		"var v = x ? a : b ? a : c;",
		"a: if (x) { y() } else { z() }\na: for (;;) break a;",
	} {
		_, err := parser.ParseFile(nil, "", src, 0)
		require.NoError(t, err, "goja accepts %q", src)
		_, _, p := Module("index.js", src)
		require.Nil(t, p, src)
	}
	// The issue-sized case: a megabyte of repeated labels is refused at its first repeat,
	// before goja piles up errors.
	big := strings.Repeat(strings.Repeat("a:", 990)+";\n", MaxSourceBytes/1990)
	_, _, p := Module("index.js", big)
	require.NotNil(t, p)
	require.Equal(t, 2, p.Offset, "the second a")
}
