package jsvm

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dop251/goja"
	"github.com/dop251/goja/file"
	"github.com/dop251/goja/parser"
)

// moduleWrapperHead turns a CommonJS file into a function expression, as Node.js does. It sits on
// the file's first line, so only columns of line 1 shift; positions are corrected back
// (see fixColumn) before anyone sees them.
const moduleWrapperHead = "(function (exports, require, module, __filename, __dirname) {"

// moduleWrapperTail closes the wrapper on a line of its own so a trailing line comment in the
// file cannot swallow it.
const moduleWrapperTail = "\n})"

// module is one compiled file of a Source: compiled once per Load and shared, read-only, by every
// runtime that requires it.
type module struct {
	path string        // path from the app root: "services/BackupSvc/index.js"
	prog *goja.Program // nil for a JSON module
	json string        // the text of a .json module
}

// version is one loaded Source: its compiled modules and one runtime pool per element. Executions
// hold the version they started on, so a Load never changes code under a running execution.
type version struct {
	src      *Source
	loc      *time.Location
	elements map[string]*elementVersion
	commons  map[string]*module
	retired  atomic.Bool
}

// elementVersion is one element of one version together with its pool of idle runtimes.
type elementVersion struct {
	v       *version
	el      *Element
	dir     string             // "services/BackupSvc"
	entry   string             // "services/BackupSvc/index.js", "" when the element has no entry file
	modules map[string]*module // by path from the app root
	maxIdle int

	mu     sync.Mutex
	idle   []*jsRuntime
	shapes [2]*elementShape // see cachedShape; [0] the runtime object, [1] the element's own exports
}

// CheckSyntax compiles one file the way Load would and reports its first syntax error as an
// *Error with File, Line and Column, so validation (trellis check, the editor) can show JS errors
// without loading a whole Source. file is the path shown to the user ("services/X/index.js").
func CheckSyntax(file, src string) error {
	_, err := compileModule(file, src)
	return err
}

// compileModule parses and compiles a CommonJS file inside the module wrapper.
func compileModule(name, src string) (*goja.Program, error) {
	wrapped := moduleWrapperHead + src + moduleWrapperTail
	ast, err := parser.ParseFile(nil, name, wrapped, 0, parser.WithDisableSourceMaps)
	if err != nil {
		var list parser.ErrorList
		if errors.As(err, &list) && len(list) > 0 {
			p := list[0].Position
			return nil, clampToSource(&Error{Code: CodeJSError, Message: "SyntaxError: " + list[0].Message,
				File: name, Line: p.Line, Column: fixColumn(p.Line, p.Column)}, src)
		}
		return nil, &Error{Code: CodeJSError, Message: "SyntaxError: " + err.Error(), File: name}
	}
	prog, err := goja.CompileAST(ast, false)
	if err != nil {
		e := &Error{Code: CodeJSError, Message: err.Error(), File: name}
		var syn *goja.CompilerSyntaxError
		if errors.As(err, &syn) {
			e.Message = "SyntaxError: " + syn.Message
			if syn.File != nil {
				p := syn.File.Position(syn.Offset)
				e.Line, e.Column = p.Line, fixColumn(p.Line, p.Column)
			}
		}
		return nil, clampToSource(e, src)
	}
	return prog, nil
}

// clampToSource keeps a position inside src: an unbalanced } makes the parser complain about
// the wrapper's tail, which is past the end of the file.
func clampToSource(e *Error, src string) *Error {
	lines := strings.Split(src, "\n")
	if e.Line > len(lines) {
		e.Line = len(lines)
		e.Column = len(lines[len(lines)-1]) + 1
	}
	return e
}

// fixColumn undoes the shift the wrapper head causes on the first line.
func fixColumn(line, col int) int {
	if line == 1 && col > len(moduleWrapperHead) {
		return col - len(moduleWrapperHead)
	}
	return col
}

func positionOf(p file.Position) (line, col int) { return p.Line, fixColumn(p.Line, p.Column) }

// compileFile compiles one file of a Source by its extension: .js (and .cjs) as CommonJS, .json as
// data; other files are not modules and are skipped.
func compileFile(p, src string) (*module, error) {
	switch path.Ext(p) {
	case ".js", ".cjs":
		prog, err := compileModule(p, src)
		if err != nil {
			return nil, err
		}
		return &module{path: p, prog: prog}, nil
	case ".json":
		if !json.Valid([]byte(src)) {
			return nil, &Error{Code: CodeJSError, Message: "invalid JSON module", File: p}
		}
		return &module{path: p, json: src}, nil
	}
	return nil, nil
}

// elementDir is where an element's files live: Element.Dir, or its fullName as a path.
func elementDir(el *Element) string {
	if el.Dir != "" {
		return strings.Trim(path.Clean(el.Dir), "/")
	}
	return strings.ReplaceAll(el.FullName, ".", "/")
}

// compileSource compiles every file of src once. It reports every problem it finds, each as an
// *Error, joined; the first one is what errors.As finds.
func compileSource(src *Source, maxIdle int) (*version, error) {
	v := &version{src: src, elements: map[string]*elementVersion{}, commons: map[string]*module{}}
	var errs []error
	loc, err := time.LoadLocation(src.Timezone)
	if err != nil {
		errs = append(errs, &Error{Code: CodeInvalidArg, Message: fmt.Sprintf("timezone %q: %v; use an IANA name such as Asia/Shanghai", src.Timezone, err)})
		loc = time.UTC
	}
	v.loc = loc
	for _, p := range sortedKeys(src.Commons) {
		clean := path.Clean(p)
		if !strings.HasPrefix(clean, "commons/") {
			errs = append(errs, &Error{Code: CodeInvalidArg, File: p, Message: "commons module paths must start with commons/"})
			continue
		}
		m, err := compileFile(clean, src.Commons[p])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if m != nil {
			v.commons[clean] = m
		}
	}
	for _, name := range sortedKeys(src.Elements) {
		el := src.Elements[name]
		if el == nil {
			errs = append(errs, &Error{Code: CodeInvalidArg, Element: name, Message: "element is nil"})
			continue
		}
		if el.FullName == "" {
			c := *el
			c.FullName = name
			el = &c
		}
		ev := &elementVersion{v: v, el: el, dir: elementDir(el), modules: map[string]*module{}, maxIdle: maxIdle}
		for _, f := range sortedKeys(el.Files) {
			rel := path.Clean(f)
			if path.IsAbs(f) || rel == ".." || strings.HasPrefix(rel, "../") {
				errs = append(errs, &Error{Code: CodeInvalidArg, Element: name, File: f, Message: "file names must stay inside the element directory"})
				continue
			}
			full := ev.dir + "/" + rel
			m, err := compileFile(full, el.Files[f])
			if err != nil {
				if e, ok := err.(*Error); ok {
					e.Element = name
				}
				errs = append(errs, err)
				continue
			}
			if m != nil {
				ev.modules[full] = m
			}
		}
		entry := el.Entry
		if entry == "" {
			entry = "index.js"
		}
		if m := ev.modules[ev.dir+"/"+path.Clean(entry)]; m != nil {
			ev.entry = m.path
		} else if el.Kind == KindJS && el.Loader == "" {
			errs = append(errs, &Error{Code: CodeInvalidArg, Element: name,
				Message: fmt.Sprintf("entry file %q is missing; add it to the element or set entry in e.json", entry)})
		}
		v.elements[name] = ev
	}
	for _, name := range sortedKeys(v.elements) {
		ev := v.elements[name]
		if l := ev.el.Loader; l != "" {
			lv := v.elements[l]
			if lv == nil || lv.loaderModule() == nil {
				errs = append(errs, &Error{Code: CodeNotFound, Element: name,
					Message: fmt.Sprintf("loader element %q has no loader.js; add it or remove loader", l)})
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return v, nil
}

// loaderModule is the loader file of a Type element: the file its definition names in "loader"
// (as registries write it), else loader.js.
func (ev *elementVersion) loaderModule() *module {
	if name, ok := ev.el.Definition["loader"].(string); ok && name != "" {
		if m := ev.modules[ev.dir+"/"+path.Clean(name)]; m != nil {
			return m
		}
	}
	return ev.modules[ev.dir+"/loader.js"]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
