package registry

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Inputs that would overflow the parser's stack (fatal to the process) are refused before
// parsing; ordinary code, however long, is not.
func TestNestingGuard(t *testing.T) {
	t.Parallel()
	const n = 300_000 // ~600 KB: under MaxFileSize, and enough to crash goja's parser
	deep := map[string]string{
		"parentheses":       "exports.x = " + strings.Repeat("(", n) + "1" + strings.Repeat(")", n),
		"arrays":            "exports.x = " + strings.Repeat("[", n) + strings.Repeat("]", n),
		"objects":           "exports.x = " + strings.Repeat("{a:", n) + "1" + strings.Repeat("}", n),
		"assignment chain":  "var a; a" + strings.Repeat("=a", n),
		"conditional chain": "var a = 1" + strings.Repeat("?1:1", n/2),
		"arrow chain":       "var f = " + strings.Repeat("a=>", n) + "1",
		"template nesting":  "var s = " + strings.Repeat("`${", n/2) + "1" + strings.Repeat("}`", n/2),
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
			info := analyzeJS("index.js", src)
			require.Len(t, info.syntax, 1)
			require.Contains(t, info.syntax[0].msg, "nested more than 1000 levels")
			require.Equal(t, 1, info.syntax[0].line)
		})
	}
	ok := map[string]string{
		"long flat code":          strings.Repeat("var a = b ? c : d; x = (y + z) * [1, 2][0];\n", 20_000),
		"long sum":                "var s = " + strings.Repeat("1 + ", 100_000) + "1\n",
		"brackets in strings":     strings.Repeat("var s = '((((((((((' + \"[[[[[[[[\" + `{{{{{{` + /[(]{3}/.source;\nif (s) /[(]/.test(s) && x.y / 2;\n", 1_000),
		"division and regexps":    strings.Repeat("var r = a / b / c, q = (a) / 2, t = /=+/g.test(s) ? x : y;\nreturn /a/;\n", 5_000),
		"comparisons and shifts":  strings.Repeat("if (a == b && c !== d && e <= f && g >= h && (i >>> 2) >= 0) {}\n", 5_000),
		"realistically nested":    "exports.handle = function (e) {\n" + strings.Repeat("if (e) {\n", 100) + strings.Repeat("}\n", 100) + "}\n",
		"template with ${} parts": strings.Repeat("var s = `a ${b ? `c ${d}` : e} f`;\n", 10_000),
	}
	for name, src := range ok {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, -1, nestingTooDeep(src))
			require.Empty(t, analyzeJS("index.js", src).syntax)
		})
	}
	// The long sum nests the AST 100,000 deep without brackets: walking it must not recurse.
	info := analyzeJS("index.js", "var s = require('./a') + "+strings.Repeat("1 + ", 100_000)+"require('./b')\n")
	require.Len(t, info.requires, 2)
}
