// Package jscompile compiles JavaScript with goja so that no source can crash or stall the
// process doing it. goja's parser and compiler recurse in Go for every level of nesting, and a
// Go stack overflow is fatal to the whole process; the compiler also folds some constant
// expressions in exponential time, and nothing interrupts a compile. So every source is scanned
// before it is parsed and its tree checked before it is compiled, against limits no real code
// comes near (MaxNesting, MaxFoldSteps, MaxSourceBytes), and refused past them with a Problem
// that names the limit and where it was broken.
//
// It is the one place the registry (trellis check, hot reload) and the sandbox (jsvm.Load, and
// eval and new Function at run time) compile JavaScript, so what check accepts is what the
// sandbox runs. It imports nothing of Trellis.
package jscompile

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/dop251/goja"
	"github.com/dop251/goja/ast"
	"github.com/dop251/goja/parser"
)

// Limits. Each is far beyond what code written by hand or generated from data reaches.
const (
	// MaxNesting is the deepest code accepted: brackets, prefix operators and chained
	// assignments, conditionals or arrows before parsing; after parsing, every level of the tree
	// (each link of a chain such as a + b + c, a.b.c or f()(), each statement), and the groups of
	// a regular expression.
	MaxNesting = 1000
	// MaxFoldSteps bounds the work goja's compiler may spend on one expression (see foldCost),
	// a few milliseconds: a chain of 15 constant &&, || or ?? operators is within it, 16 are
	// not. MaxFoldStepsTotal bounds it for all the expressions of a source together, a fraction
	// of a second; ordinary code costs two or three steps a node, 1 MiB of it about two million.
	MaxFoldSteps      = 100_000
	MaxFoldStepsTotal = 100 * MaxFoldSteps
	// MaxSourceBytes is the longest source accepted, one file or one string given to eval or
	// new Function. Within it, what the scan does not count (statements nested without
	// brackets) cannot make the parser exhaust the stack.
	MaxSourceBytes = 1 << 20
)

// Kind says which check refused a source.
type Kind string

const (
	KindSyntax  Kind = "syntax"  // goja rejects it: a syntax or early error
	KindNesting Kind = "nesting" // nested deeper than MaxNesting
	KindCost    Kind = "cost"    // folding a constant expression would take over MaxFoldSteps
	KindSize    Kind = "size"    // longer than MaxSourceBytes
)

// Problem is why a source cannot be compiled, and where.
type Problem struct {
	Kind    Kind
	Message string // without position or prefix: "code nested more than 1000 levels deep (...)"
	Offset  int    // byte offset in the source where it was found, from 0
}

func (p *Problem) Error() string { return p.Message }

// Position is the problem's 1-based line and column in src, the column counted in characters
// as editors show it.
func (p *Problem) Position(src string) (line, col int) {
	off := min(max(p.Offset, 0), len(src))
	line = 1 + strings.Count(src[:off], "\n")
	start := strings.LastIndexByte(src[:off], '\n') + 1
	return line, utf8.RuneCountInString(src[start:off]) + 1
}

var (
	scanMessage   = fmt.Sprintf("code nested more than %d levels deep (brackets, prefix operators such as !, and chained assignments, conditionals or arrows); split it into functions", MaxNesting)
	treeNesting   = fmt.Sprintf("code nested more than %d levels deep (each link of a chain such as a + b + c, a.b.c or f()(), each statement and each bracket is a level); split it into functions or variables", MaxNesting)
	regexpMessage = fmt.Sprintf("regular expression with groups nested more than %d levels deep", MaxNesting)
	foldMessage   = fmt.Sprintf("expression too costly to compile: goja folds constant &&, || and ?? chains in time that doubles with each operator, and this one needs more than %d steps; compute it in steps with variables", MaxFoldSteps)
	totalMessage  = fmt.Sprintf("code too costly to compile: its expressions need more than %d steps together; split it into several files", MaxFoldStepsTotal)
)

const sizeMessageFmt = "code of %d bytes is longer than the %d bytes (1 MiB) one file, eval or new Function may compile"

func nestingProblem(offset int, msg string) *Problem {
	return &Problem{Kind: KindNesting, Offset: offset, Message: msg}
}

func foldProblem(offset int, msg string) *Problem {
	return &Problem{Kind: KindCost, Offset: offset, Message: msg}
}

// ModuleWrapperHead turns a CommonJS file into a function expression, as Node.js does. It has no
// newline, so only columns of the file's first line shift in the wrapped text.
const ModuleWrapperHead = "(function (exports, require, module, __filename, __dirname) {"

// moduleWrapperTail closes the wrapper on a line of its own so a trailing line comment in the
// file cannot swallow it.
const moduleWrapperTail = "\n})"

// Module parses and compiles src, the file name (shown in stack traces), as a CommonJS module
// body inside Node's wrapper function. It returns the program, which evaluates to the wrapper
// function, and the syntax tree, whose only statement is the wrapper (see ModuleBody); or the
// first problem found, its offset in src. Source maps are never read: a sourceMappingURL comment
// must not make the parser open a file.
func Module(name, src string) (*goja.Program, *ast.Program, *Problem) {
	wrapped := ModuleWrapperHead + src + moduleWrapperTail
	shift := len(ModuleWrapperHead)
	if p := checkSource(src); p != nil {
		return nil, nil, p
	}
	tree, err := parser.ParseFile(nil, name, wrapped, 0, parser.WithDisableSourceMaps)
	if err != nil {
		return nil, nil, syntaxProblem(err, wrapped, shift)
	}
	if p := checkTree(tree); p != nil {
		p.Offset -= 1 + shift
		return nil, nil, p
	}
	prog, err := goja.CompileAST(tree, false)
	if err != nil {
		return nil, nil, syntaxProblem(err, wrapped, shift)
	}
	return prog, tree, nil
}

// ModuleBody is the module's top level in a tree Module returned: the wrapper function's body.
func ModuleBody(tree *ast.Program) []ast.Statement {
	if tree == nil || len(tree.Body) == 0 {
		return nil
	}
	es, ok := tree.Body[0].(*ast.ExpressionStatement)
	if !ok {
		return nil
	}
	fn, ok := es.Expression.(*ast.FunctionLiteral)
	if !ok || fn.Body == nil {
		return nil
	}
	return fn.Body.List
}

// Check reports whether src, code about to be compiled at run time as a script (the string
// given to eval, or the function text new Function builds), is within the limits: nil when it
// is. Its syntax errors are not reported: goja reports them itself when it compiles src.
func Check(src string) *Problem {
	if p := checkSource(src); p != nil {
		return p
	}
	tree, err := parser.ParseFile(nil, "", src, 0, parser.WithDisableSourceMaps)
	if err != nil {
		return nil
	}
	if p := checkTree(tree); p != nil {
		p.Offset--
		return p
	}
	return nil
}

// CheckRegExp reports whether pattern, the source of a regular expression about to be
// compiled, nests its groups within MaxNesting: nil when it does.
func CheckRegExp(pattern string) *Problem {
	if off := regexpTooDeep(pattern); off >= 0 {
		return nestingProblem(off, regexpMessage)
	}
	return nil
}

// checkSource is what is checked before parsing: the size, then the scan.
func checkSource(src string) *Problem {
	if len(src) > MaxSourceBytes {
		return &Problem{Kind: KindSize, Offset: MaxSourceBytes, Message: fmt.Sprintf(sizeMessageFmt, len(src), MaxSourceBytes)}
	}
	if off, label := scanNesting(src); label != "" {
		// goja's own words for it, once instead of once per enclosing label.
		return &Problem{Kind: KindSyntax, Offset: off, Message: fmt.Sprintf("Label '%s' already exists", label)}
	} else if off >= 0 {
		return nestingProblem(off, scanMessage)
	}
	return nil
}

// syntaxProblem is a parser or compiler error as a Problem at its offset in the unwrapped
// source (wrapped has shift more bytes in front). Only the parser's first error is kept: its
// later ones are usually its own confusion.
func syntaxProblem(err error, wrapped string, shift int) *Problem {
	p := &Problem{Kind: KindSyntax, Message: err.Error()}
	var list parser.ErrorList
	var one *parser.Error
	var syn *goja.CompilerSyntaxError
	var ref *goja.CompilerReferenceError
	switch {
	case errors.As(err, &list) && len(list) > 0:
		p.Message, p.Offset = list[0].Message, offsetOf(wrapped, list[0].Position.Line, list[0].Position.Column)
	case errors.As(err, &one):
		p.Message, p.Offset = one.Message, offsetOf(wrapped, one.Position.Line, one.Position.Column)
	case errors.As(err, &syn):
		p.Message, p.Offset = syn.Message, syn.Offset
	case errors.As(err, &ref):
		p.Message, p.Offset = ref.Message, ref.Offset
	}
	// An unbalanced } makes the parser complain about the wrapper's tail, past the file's end.
	p.Offset = min(max(p.Offset-shift, 0), len(wrapped)-shift-len(moduleWrapperTail))
	return p
}

// offsetOf turns goja's 1-based line and byte column into a byte offset of s.
func offsetOf(s string, line, col int) int {
	off := 0
	for l := 1; l < line; l++ {
		i := strings.IndexByte(s[off:], '\n')
		if i < 0 {
			return len(s)
		}
		off += i + 1
	}
	return off + max(col-1, 0)
}
