package registry

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/dop251/goja/ast"
	"github.com/dop251/goja/parser"
	"github.com/dop251/goja/token"
)

// jsInfo is what static analysis learns about one JavaScript file. Nothing here runs user code:
// the file is only parsed.
type jsInfo struct {
	syntax   []jsSpot // syntax errors
	requires []jsSpot // string-literal require() calls: msg holds the target
	exports  []string // names of functions the module exports, in first-seen order
	reexport string   // module.exports = require("<reexport>"): its exports are this file's
	lines    []int    // line starts of the source, for positions
	src      string
}

// jsSpot is a position in a JS file with a message (or a require target).
type jsSpot struct {
	line, col int
	msg       string
}

// cjsPrefix wraps a file the way a CommonJS loader does, so what is legal in a module (a
// top-level return, for one) parses. It has no newline, so only line 1's columns shift.
const cjsPrefix = "(function (exports, require, module, __filename, __dirname) {"

// analyzeJS parses src as a CommonJS module body.
func analyzeJS(name, src string) *jsInfo {
	info := &jsInfo{src: src, lines: lineStarts(src)}
	if off := nestingTooDeep(src); off >= 0 {
		l, c := lineColOf(src, info.lines, off)
		info.syntax = append(info.syntax, jsSpot{line: l, col: c,
			msg: fmt.Sprintf("code nested more than %d levels deep (brackets and chained assignments, conditionals or arrows); split it into functions", MaxNesting)})
		return info
	}
	wrapped := cjsPrefix + src + "\n})"
	// Source maps are disabled: a sourceMappingURL comment must never make the parser read a
	// file, least of all one outside the app.
	prog, err := parser.ParseFile(nil, name, wrapped, 0, parser.WithDisableSourceMaps)
	if err != nil {
		wl := lineStarts(wrapped)
		var list parser.ErrorList
		var one *parser.Error
		switch {
		case errors.As(err, &list):
			// Only the first error: the parser's later ones are usually its own confusion.
			if len(list) > 0 {
				info.syntax = append(info.syntax, info.spotFromWrapped(wl, list[0].Position.Line, list[0].Position.Column, list[0].Message))
			}
		case errors.As(err, &one):
			info.syntax = append(info.syntax, info.spotFromWrapped(wl, one.Position.Line, one.Position.Column, one.Message))
		default:
			info.syntax = append(info.syntax, jsSpot{line: 1, col: 1, msg: err.Error()})
		}
		return info
	}
	body := moduleBody(prog)
	info.findExports(body)
	if !strings.Contains(src, "require") {
		return info // nothing for the walk to find
	}
	walkAST(prog, func(n any) {
		call, ok := n.(*ast.CallExpression)
		if !ok || len(call.ArgumentList) == 0 {
			return
		}
		if id, ok := call.Callee.(*ast.Identifier); !ok || id.Name.String() != "require" {
			return
		}
		lit, ok := call.ArgumentList[0].(*ast.StringLiteral)
		if !ok {
			return // a computed require cannot be checked statically; the sandbox still limits it
		}
		l, c := info.pos(int(lit.Idx))
		info.requires = append(info.requires, jsSpot{line: l, col: c, msg: lit.Value.String()})
	})
	return info
}

// spotFromWrapped maps a line/byte-column in the wrapped source back to the user's file.
func (info *jsInfo) spotFromWrapped(wl []int, line, col int, msg string) jsSpot {
	off := len(cjsPrefix)
	if line >= 1 && line <= len(wl) {
		off = wl[line-1] + col - 1
	}
	off -= len(cjsPrefix)
	l, c := lineColOf(info.src, info.lines, off)
	return jsSpot{line: l, col: c, msg: msg}
}

// pos maps a goja file.Idx (1-based offset into the wrapped source) to the user's file.
func (info *jsInfo) pos(idx int) (int, int) {
	return lineColOf(info.src, info.lines, idx-1-len(cjsPrefix))
}

// moduleBody returns the statements of the wrapper function: the module's top level.
func moduleBody(prog *ast.Program) []ast.Statement {
	if len(prog.Body) == 0 {
		return nil
	}
	es, ok := prog.Body[0].(*ast.ExpressionStatement)
	if !ok {
		return nil
	}
	fn, ok := es.Expression.(*ast.FunctionLiteral)
	if !ok || fn.Body == nil {
		return nil
	}
	return fn.Body.List
}

// exportScan tracks the names a module exports while its top-level statements are read in
// order. It understands the CommonJS forms people write: exports.x = f, exports["x"] = f,
// module.exports.x = f, module.exports = {x, y: f, z() {}}, module.exports = obj (a top-level
// object literal, plus obj.x = f assignments), module.exports = require("./impl") and
// Object.assign(module.exports, {...}).
type exportScan struct {
	names   []string
	seen    map[string]bool
	objects map[string][]string // top-level identifier → function names set on it
	literal map[string]bool     // top-level identifiers bound to non-function literals
	alias   string              // module.exports = <alias>
}

func (info *jsInfo) findExports(body []ast.Statement) {
	s := &exportScan{seen: map[string]bool{}, objects: map[string][]string{}, literal: map[string]bool{}}
	for _, st := range body {
		switch st := st.(type) {
		case *ast.VariableStatement:
			s.bindings(st.List)
		case *ast.LexicalDeclaration:
			s.bindings(st.List)
		case *ast.ExpressionStatement:
			s.expression(info, st.Expression)
		}
	}
	if s.alias != "" {
		for _, n := range s.objects[s.alias] {
			s.add(n)
		}
	}
	info.exports = s.names
}

func (s *exportScan) add(name string) {
	if name != "" && !s.seen[name] {
		s.seen[name] = true
		s.names = append(s.names, name)
	}
}

func (s *exportScan) reset() {
	s.names = nil
	s.seen = map[string]bool{}
}

func (s *exportScan) bindings(list []*ast.Binding) {
	for _, b := range list {
		id, ok := b.Target.(*ast.Identifier)
		if !ok || b.Initializer == nil {
			continue
		}
		name := id.Name.String()
		if obj, ok := b.Initializer.(*ast.ObjectLiteral); ok {
			s.objects[name] = append(s.objects[name], s.objectNames(obj)...)
			s.literal[name] = true
			continue
		}
		s.literal[name] = !s.functionish(b.Initializer)
	}
}

func (s *exportScan) expression(info *jsInfo, e ast.Expression) {
	switch e := e.(type) {
	case *ast.SequenceExpression:
		for _, x := range e.Sequence {
			s.expression(info, x)
		}
	case *ast.AssignExpression:
		if e.Operator != token.ASSIGN {
			return
		}
		s.assign(info, e.Left, e.Right)
		if inner, ok := e.Right.(*ast.AssignExpression); ok { // exports.a = exports.b = f
			s.expression(info, inner)
		}
	case *ast.CallExpression: // Object.assign(module.exports | exports, {...})
		dot, ok := e.Callee.(*ast.DotExpression)
		if !ok || dot.Identifier.Name.String() != "assign" || !isIdent(dot.Left, "Object") || len(e.ArgumentList) < 2 {
			return
		}
		if !isExportsObject(e.ArgumentList[0]) {
			return
		}
		for _, a := range e.ArgumentList[1:] {
			if obj, ok := a.(*ast.ObjectLiteral); ok {
				for _, n := range s.objectNames(obj) {
					s.add(n)
				}
			}
		}
	}
}

func (s *exportScan) assign(info *jsInfo, left, right ast.Expression) {
	for {
		if inner, ok := right.(*ast.AssignExpression); ok {
			right = inner.Right
			continue
		}
		break
	}
	// module.exports = ...
	if isModuleExports(left) {
		s.reset()
		s.alias = ""
		switch r := right.(type) {
		case *ast.ObjectLiteral:
			for _, n := range s.objectNames(r) {
				s.add(n)
			}
		case *ast.Identifier:
			s.alias = r.Name.String()
		case *ast.CallExpression:
			if isIdent(r.Callee, "require") && len(r.ArgumentList) == 1 {
				if lit, ok := r.ArgumentList[0].(*ast.StringLiteral); ok {
					info.reexport = lit.Value.String()
				}
			}
		}
		return
	}
	obj, name := memberOf(left)
	if name == "" {
		return
	}
	switch {
	case isExportsObject(obj):
		if s.functionish(right) {
			s.add(name)
		}
	default:
		if id, ok := obj.(*ast.Identifier); ok && s.functionish(right) {
			n := id.Name.String()
			s.objects[n] = append(s.objects[n], name)
		}
	}
}

// objectNames lists the keys of an object literal whose values are functions (or could be).
func (s *exportScan) objectNames(obj *ast.ObjectLiteral) []string {
	var out []string
	for _, p := range obj.Value {
		switch p := p.(type) {
		case *ast.PropertyShort:
			if !s.literal[p.Name.Name.String()] {
				out = append(out, p.Name.Name.String())
			}
		case *ast.PropertyKeyed:
			if p.Computed {
				continue
			}
			var key string
			switch k := p.Key.(type) {
			case *ast.StringLiteral:
				key = k.Value.String()
			case *ast.Identifier:
				key = k.Name.String()
			}
			if key != "" && (p.Kind == ast.PropertyKindMethod || s.functionish(p.Value)) {
				out = append(out, key)
			}
		}
	}
	return out
}

// functionish is false only for values that certainly are not functions (literals, and
// identifiers bound to them), so analysis never reports a real export as missing.
func (s *exportScan) functionish(e ast.Expression) bool {
	switch e := e.(type) {
	case *ast.NumberLiteral, *ast.StringLiteral, *ast.BooleanLiteral, *ast.NullLiteral,
		*ast.TemplateLiteral, *ast.ObjectLiteral, *ast.ArrayLiteral, *ast.RegExpLiteral:
		return false
	case *ast.Identifier:
		return !s.literal[e.Name.String()]
	case *ast.AssignExpression:
		return s.functionish(e.Right)
	}
	return true
}

// memberOf splits `a.b` and `a["b"]` into a and "b".
func memberOf(e ast.Expression) (ast.Expression, string) {
	switch e := e.(type) {
	case *ast.DotExpression:
		return e.Left, e.Identifier.Name.String()
	case *ast.BracketExpression:
		if lit, ok := e.Member.(*ast.StringLiteral); ok {
			return e.Left, lit.Value.String()
		}
	}
	return nil, ""
}

func isIdent(e ast.Expression, name string) bool {
	id, ok := e.(*ast.Identifier)
	return ok && id.Name.String() == name
}

func isModuleExports(e ast.Expression) bool {
	obj, name := memberOf(e)
	return name == "exports" && isIdent(obj, "module")
}

func isExportsObject(e ast.Expression) bool {
	return isIdent(e, "exports") || isModuleExports(e)
}

// walkAST calls visit for every node of the tree. goja's ast package has no walker, so this
// one follows exported fields by reflection: it keeps working when goja adds node types.
func walkAST(root any, visit func(any)) {
	// Iterative: a long chain such as 1+1+1+... nests the tree as deep as the chain is long,
	// with no brackets for the nesting scan to see.
	stack := []reflect.Value{reflect.ValueOf(root)}
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		switch v.Kind() {
		case reflect.Interface:
			if !v.IsNil() {
				stack = append(stack, v.Elem())
			}
		case reflect.Pointer:
			if v.IsNil() || v.Elem().Kind() != reflect.Struct {
				continue
			}
			visit(v.Interface())
			stack = append(stack, v.Elem())
		case reflect.Struct:
			fields := nodeFields(v.Type())
			// Pushed in reverse so fields are visited in source order.
			for i := len(fields) - 1; i >= 0; i-- {
				stack = append(stack, v.Field(fields[i]))
			}
		case reflect.Slice:
			for i := v.Len() - 1; i >= 0; i-- {
				stack = append(stack, v.Index(i))
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

// isJSName reports whether name is a plain JavaScript identifier (what handler and function
// names must be).
func isJSName(name string) bool {
	if name == "" {
		return false
	}
	for i, r := range name {
		ok := r == '_' || r == '$' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')
		if !ok {
			return false
		}
	}
	return !strings.Contains(name, ".")
}
