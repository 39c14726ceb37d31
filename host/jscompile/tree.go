package jscompile

import (
	"reflect"
	"sync"

	"github.com/dop251/goja/ast"
	"github.com/dop251/goja/token"
)

// goja's compiler recurses once per level of the tree (a few hundred bytes of stack to 2 KB),
// and asks every node of a chain whether it is constant by walking the chain below it, so
// compiling a + b + c + … takes time quadratic in its length (100,000 terms: 70 s). A chain
// the parser read in a loop has no brackets for the scan to see; the tree check bounds it.
//
// goja also folds constant expressions at compile time, and folds a constant &&, || or ??
// by evaluating its left side once to decide whether it is constant and once more to emit it,
// each evaluation doing the same below it: 1 && 1 && … takes time that doubles with every
// operator (20 terms: 0.1 s, 40 terms: days), and nothing can interrupt a compile. foldCost
// counts the steps goja would take for each expression, and the check refuses an expression
// past MaxFoldSteps, and a source whose expressions together need more than MaxFoldStepsTotal.

// Walk calls visit for every node of the tree below root, in source order. goja's ast package has
// no walker, so this one follows exported fields by reflection: it keeps working when goja adds
// node types. It is iterative: a long chain such as 1+1+1+... nests the tree as deep as the chain
// is long.
func Walk(root any, visit func(any)) {
	walk(root, func(n any, _ int, _ bool) bool { visit(n); return true })
}

// walk visits every node with its depth (counting expressions and statements only) and whether
// its parent is an operator node (unary or binary); visit returns false to stop the walk.
func walk(root any, visit func(n any, depth int, inOperator bool) bool) {
	type item struct {
		v          reflect.Value
		depth      int
		inOperator bool
	}
	stack := []item{{v: reflect.ValueOf(root)}}
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		v := it.v
		switch v.Kind() {
		case reflect.Interface:
			if !v.IsNil() {
				stack = append(stack, item{v.Elem(), it.depth, it.inOperator})
			}
		case reflect.Pointer:
			if v.IsNil() || v.Elem().Kind() != reflect.Struct {
				continue
			}
			n := v.Interface()
			depth := it.depth
			switch n.(type) {
			case ast.Expression, ast.Statement:
				depth++
			}
			if !visit(n, depth, it.inOperator) {
				return
			}
			_, op := operands(n)
			stack = append(stack, item{v.Elem(), depth, op})
		case reflect.Struct:
			fields := nodeFields(v.Type())
			// Pushed in reverse so fields are visited in source order.
			for i := len(fields) - 1; i >= 0; i-- {
				stack = append(stack, item{v.Field(fields[i]), it.depth, it.inOperator})
			}
		case reflect.Slice:
			for i := v.Len() - 1; i >= 0; i-- {
				stack = append(stack, item{v.Index(i), it.depth, it.inOperator})
			}
		}
	}
}

// fieldCache maps an AST struct type to the indices of the fields worth walking: exported and
// of a kind that can hold nodes. Computing it per visit dominated parsing time.
var fieldCache sync.Map // reflect.Type → []int

func nodeFields(t reflect.Type) []int {
	if f, ok := fieldCache.Load(t); ok {
		return f.([]int)
	}
	var out []int
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		// DeclarationList repeats bindings already in the tree; File is not a node.
		if !f.IsExported() || f.Name == "DeclarationList" || f.Name == "File" {
			continue
		}
		switch f.Type.Kind() {
		case reflect.Interface, reflect.Pointer, reflect.Struct, reflect.Slice:
			out = append(out, i)
		}
	}
	fieldCache.Store(t, out)
	return out
}

// checkTree refuses a tree nested deeper than MaxNesting, an expression whose constant folding
// would take more than MaxFoldSteps, and a regular expression literal whose groups nest deeper
// than MaxNesting. It returns the problem with the offset of the node (from 1, as goja's Idx),
// or nil.
func checkTree(root ast.Node) *Problem {
	var prob *Problem
	var roots []ast.Expression // operator expressions that are not operands of another one
	walk(root, func(n any, depth int, inOperator bool) bool {
		node, _ := n.(ast.Node)
		if depth > MaxNesting {
			prob = nestingProblem(idx(node), treeNesting)
			return false
		}
		if re, ok := n.(*ast.RegExpLiteral); ok {
			if off := regexpTooDeep(re.Pattern); off >= 0 {
				prob = &Problem{Kind: KindNesting, Offset: int(re.Idx) + off, Message: regexpMessage}
				return false
			}
		}
		if e, ok := n.(ast.Expression); ok && !inOperator {
			if _, isOp := operands(n); isOp {
				roots = append(roots, e)
			}
		}
		return true
	})
	if prob != nil {
		return prob
	}
	// The tree is at most MaxNesting deep now, so foldCost may recurse.
	var total uint64
	for _, e := range roots {
		steps := foldCost(e).steps()
		if steps > MaxFoldSteps {
			return foldProblem(idx(e), foldMessage)
		}
		if total = sat(total, steps); total > MaxFoldStepsTotal {
			return foldProblem(idx(e), totalMessage)
		}
	}
	return nil
}

func idx(n ast.Node) int {
	if n == nil {
		return 0
	}
	return int(n.Idx0())
}

// operands returns the operands of a unary or binary expression, and whether n is one.
func operands(n any) ([]ast.Expression, bool) {
	switch e := n.(type) {
	case *ast.UnaryExpression:
		return []ast.Expression{e.Operand}, true
	case *ast.BinaryExpression:
		return []ast.Expression{e.Left, e.Right}, true
	}
	return nil, false
}

// fold is what goja's compiler does with one expression: whether it considers it constant, and
// how many code-emitting steps asking (constant()) and emitting (emitGetter) it take. It is an
// upper bound: a constant &&, || or ?? counts as constant whichever way it is decided.
type fold struct {
	konst     bool
	ask, emit uint64
}

// steps is what emitting the expression where an expression is expected costs (emitExpr: ask,
// then emit or evaluate).
func (f fold) steps() uint64 { return sat(f.ask, f.emit) }

// foldCap keeps the counts far from overflowing; anything past it is refused anyway.
const foldCap = 1 << 40

func sat(a ...uint64) uint64 {
	var s uint64
	for _, x := range a {
		s += x
		if s > foldCap {
			return foldCap
		}
	}
	return s
}

// foldCost mirrors goja's constant() and emitGetter for literals and operators (compiler_expr.go);
// anything else is a single step that is never constant (its own operands are other roots).
func foldCost(e ast.Expression) fold {
	switch e := e.(type) {
	case *ast.NumberLiteral, *ast.StringLiteral, *ast.BooleanLiteral, *ast.NullLiteral:
		return fold{konst: true, emit: 1}
	case *ast.UnaryExpression:
		o := foldCost(e.Operand)
		return fold{konst: o.konst, ask: o.ask, emit: sat(1, o.steps())}
	case *ast.BinaryExpression:
		l, r := foldCost(e.Left), foldCost(e.Right)
		switch e.Operator {
		case token.LOGICAL_AND, token.LOGICAL_OR, token.COALESCE:
			if l.konst {
				// constant() evaluates the left side to see whether it decides; emitGetter
				// evaluates it again, then emits the right side.
				return fold{konst: true, ask: sat(l.ask, l.emit, r.ask), emit: sat(1, l.ask, l.emit, r.steps())}
			}
			return fold{ask: l.ask, emit: sat(1, l.ask, l.steps(), r.steps())}
		}
		return fold{konst: l.konst && r.konst, ask: sat(l.ask, r.ask), emit: sat(1, l.steps(), r.steps())}
	}
	return fold{emit: 1}
}

// regexpTooDeep returns the offset in pattern where its groups first nest deeper than
// MaxNesting, or -1. regexp2, which goja uses for what Go's regexp cannot do (lookarounds,
// back-references), parses and compiles groups recursively.
func regexpTooDeep(pattern string) int {
	depth, inClass := 0, false
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; {
		case c == '\\':
			i++
		case inClass:
			inClass = c != ']'
		case c == '[':
			inClass = true
		case c == '(':
			if depth++; depth > MaxNesting {
				return i
			}
		case c == ')':
			depth = max(depth-1, 0)
		}
	}
	return -1
}
