package registry

import (
	"strings"

	"github.com/dop251/goja/ast"
	"github.com/dop251/goja/token"

	"github.com/trellis-run/trellis/host/jscompile"
)

// jsInfo is what static analysis learns about one JavaScript file. Nothing here runs user code:
// the file is only compiled.
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

// analyzeJS compiles src as a CommonJS module body, exactly as the sandbox will (jscompile),
// so a file check accepts is a file the sandbox runs: its syntax errors, the early errors only
// the compiler finds, and code past jscompile's limits (nesting, folding cost) are problems with
// their position. Nothing is run.
func analyzeJS(name, src string) *jsInfo {
	info := &jsInfo{src: src, lines: lineStarts(src)}
	_, tree, p := jscompile.Module(name, src)
	if p != nil {
		l, c := lineColOf(src, info.lines, p.Offset)
		msg := "JavaScript syntax error: " + p.Message
		if p.Kind != jscompile.KindSyntax {
			msg = "JavaScript too complex to compile: " + p.Message
		}
		info.syntax = append(info.syntax, jsSpot{line: l, col: c, msg: msg})
		return info
	}
	info.findExports(jscompile.ModuleBody(tree))
	if !strings.Contains(src, "require") {
		return info // nothing for the walk to find
	}
	jscompile.Walk(tree, func(n any) {
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

// pos maps a goja file.Idx (1-based offset into the wrapped source) to the user's file.
func (info *jsInfo) pos(idx int) (int, int) {
	return lineColOf(info.src, info.lines, idx-1-len(jscompile.ModuleWrapperHead))
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
