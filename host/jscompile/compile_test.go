package jscompile

import (
	"fmt"
	"strings"
	"testing"

	"github.com/dop251/goja/ast"
	"github.com/dop251/goja/parser"
	"github.com/stretchr/testify/require"
)

// Chains the parser reads in a loop have no brackets for the scan to see, but nest the tree (and
// the compiler's recursion) as deep as they are long, and cost the compiler time quadratic in
// their length: past MaxNesting links they are refused, with the position of the chain; up to
// it they compile.
func TestTreeNesting(t *testing.T) {
	t.Parallel()
	chains := map[string]func(n int) string{
		"sum":          func(n int) string { return "var s = " + strings.Repeat("x + ", n) + "1;" },
		"constant sum": func(n int) string { return "var s = " + strings.Repeat("1 + ", n) + "1;" },
		"member chain": func(n int) string { return "var s = a" + strings.Repeat(".b", n) + ";" },
		"call chain":   func(n int) string { return "var s = f" + strings.Repeat("()", n) + ";" },
		"and chain":    func(n int) string { return "var s = " + strings.Repeat("x && ", n) + "1;" },
		"comma-free statements": func(n int) string {
			return strings.Repeat("if (x) ", n) + "y();"
		},
		"else if": func(n int) string { return "if (x) y();" + strings.Repeat(" else if (x) y();", n/2) },
		"labels": func(n int) string {
			var b strings.Builder
			for i := range n {
				fmt.Fprintf(&b, "l%d: ", i)
			}
			return b.String() + "y();"
		},
	}
	for name, chain := range chains {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			src := "exports.x = 1;\n" + chain(100_000)
			_, _, p := Module("index.js", src)
			require.NotNil(t, p, "a chain of 100,000")
			require.Equal(t, KindNesting, p.Kind, p.Message)
			require.Contains(t, p.Message, "nested more than 1000 levels")
			line, col := p.Position(src)
			require.Equal(t, 2, line, "the chain's line")
			require.Positive(t, col)
			require.NotNil(t, Check(src))

			short := "exports.x = 1;\n" + chain(900)
			_, _, p = Module("index.js", short)
			require.Nil(t, p, "a chain of 900")
			require.Nil(t, Check(short))
		})
	}
}

// goja folds a constant &&, || or ?? chain in time that doubles with each operator; a chain
// past MaxFoldSteps is refused before it is compiled, shorter ones and long chains of
// non-constant operands compile.
func TestConstantFolding(t *testing.T) {
	t.Parallel()
	for _, op := range []string{"1 && ", "0 || ", "null ?? ", "!0 && ", "(1 + 2) && "} {
		refused := "exports.f = () => " + strings.Repeat(op, 40) + "1;"
		_, _, p := Module("index.js", refused)
		require.NotNil(t, p, "%q × 40", op)
		require.Equal(t, KindCost, p.Kind)
		require.Contains(t, p.Message, "more than 100000 steps")
		line, col := p.Position(refused)
		start := len("exports.f = () => ") + strings.IndexAny(op, "0123456789n!") + 1
		require.Equal(t, []int{1, start}, []int{line, col}, "the expression's start")
		require.NotNil(t, Check(refused))

		accepted := "exports.f = () => " + strings.Repeat(op, 12) + "1;"
		_, _, p = Module("index.js", accepted)
		require.Nil(t, p, "%q × 12", op)
	}
	// The model's bound: where it refuses, goja's compile has outgrown what it allows.
	require.Less(t, foldCost(mustExpr(t, strings.Repeat("1 && ", 15)+"1")).steps(), uint64(MaxFoldSteps))
	require.Greater(t, foldCost(mustExpr(t, strings.Repeat("1 && ", 16)+"1")).steps(), uint64(MaxFoldSteps))
	for _, src := range []string{
		"exports.f = x => " + strings.Repeat("x && ", 900) + "1;",
		"exports.f = x => " + strings.Repeat("x.a || ", 900) + "1;",
		"exports.s = " + strings.Repeat("'abc' + ", 900) + "'d';",
	} {
		_, _, p := Module("index.js", src)
		require.Nil(t, p, src[:30])
	}
}

// mustExpr parses src, one expression.
func mustExpr(t *testing.T, src string) ast.Expression {
	t.Helper()
	tree, err := parser.ParseFile(nil, "", src, 0)
	require.NoError(t, err)
	return tree.Body[0].(*ast.ExpressionStatement).Expression
}

// Many expressions each within MaxFoldSteps are refused together past MaxFoldStepsTotal; a
// megabyte of ordinary code is far within it.
func TestFoldingTotal(t *testing.T) {
	t.Parallel()
	line := "x = " + strings.Repeat("1 && ", 14) + "1;\n"
	many := strings.Repeat(line, MaxSourceBytes/len(line))
	_, _, p := Module("index.js", many)
	require.NotNil(t, p)
	require.Equal(t, KindCost, p.Kind)
	require.Contains(t, p.Message, "more than 10000000 steps together")

	ordinary := strings.Repeat("var a = b ? c : d; x = (y + z) * [1, 2][0]; f(a, b.c, 'd' + e);\n", MaxSourceBytes/68)
	tree, err := parser.ParseFile(nil, "", ordinary, 0)
	require.NoError(t, err)
	require.Nil(t, checkTree(tree))
}

// Module reports syntax errors, and the early errors only goja's compiler finds, at their
// position in the file (not the wrapped text); Check leaves syntax errors to goja.
func TestModuleSyntaxErrors(t *testing.T) {
	t.Parallel()
	for src, want := range map[string][3]any{
		"exports.f = function () {\n  return 1 +;\n};": {2, 13, "Unexpected token ;"},
		"let a = 1;\nlet a = 2;\n":                     {2, 5, "Identifier 'a' has already been declared"},
		"exports.f = function () {\n  return 1;\n}\n}": {4, 2, "Unexpected token }"},
	} {
		_, _, p := Module("index.js", src)
		require.NotNil(t, p, src)
		require.Equal(t, KindSyntax, p.Kind)
		line, col := p.Position(src)
		require.Equal(t, want, [3]any{line, col, p.Message}, src)
		require.Nil(t, Check(src))
	}
	prog, tree, p := Module("index.js", "exports.a = 1;\nexports.b = () => 2;\n")
	require.Nil(t, p)
	require.NotNil(t, prog)
	require.Len(t, ModuleBody(tree), 2)
}

// Regular expression literals, which goja compiles as the code runs, and patterns about to be
// compiled (CheckRegExp) nest their groups at most MaxNesting deep.
func TestRegExpNesting(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat("(", 2000) + "a" + strings.Repeat(")", 2000)
	require.NotNil(t, CheckRegExp("(?=a)"+deep))
	require.Nil(t, CheckRegExp(`(?=a)((a)|[((((]|\(\()`+strings.Repeat("(a)", 5000)))
	src := "exports.re = /(?=a)" + deep + "/;"
	_, _, p := Module("index.js", src)
	require.NotNil(t, p)
	require.Equal(t, KindNesting, p.Kind)
	require.Contains(t, p.Message, "regular expression")
}

// Sources longer than MaxSourceBytes are refused before anything looks at them.
func TestSourceSize(t *testing.T) {
	t.Parallel()
	big := "// " + strings.Repeat("x", MaxSourceBytes)
	_, _, p := Module("index.js", big)
	require.NotNil(t, p)
	require.Equal(t, KindSize, p.Kind)
	require.Contains(t, p.Message, "1 MiB")
	require.NotNil(t, Check(big))
}
