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

	"github.com/trellis-run/trellis/host/jscompile"
)

// module is one compiled file of a Source: compiled once (see programCache) and shared,
// read-only, by every runtime that requires it.
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

// CheckSyntax compiles one file the way Load would and reports its first problem (a syntax
// error, or code past jscompile's limits) as an *Error with File, Line and Column, so
// validation (trellis check, the editor) can show JS errors without loading a whole Source.
// file is the path shown to the user ("services/X/index.js").
func CheckSyntax(file, src string) error {
	_, err := compileModule(file, src)
	return err
}

// compileModule compiles a CommonJS file inside the module wrapper (jscompile.Module).
func compileModule(name, src string) (*goja.Program, error) {
	prog, _, p := jscompile.Module(name, src)
	if p != nil {
		e := &Error{Code: CodeJSError, Message: p.Message, File: name}
		if p.Kind == jscompile.KindSyntax {
			e.Message = "SyntaxError: " + p.Message
		}
		e.Line, e.Column = p.Position(src)
		return nil, e
	}
	return prog, nil
}

// fixColumn undoes the shift the wrapper head causes on the first line.
func fixColumn(line, col int) int {
	if line == 1 && col > len(jscompile.ModuleWrapperHead) {
		return col - len(jscompile.ModuleWrapperHead)
	}
	return col
}

func positionOf(p file.Position) (line, col int) { return p.Line, fixColumn(p.Line, p.Column) }

// programCache keeps the programs of the last version loaded, by file path and source, so a
// Load compiles only the files that changed: one slow file costs its own edit, not every later
// reload of other elements. A goja.Program is immutable and may run in any number of runtimes.
type programCache map[string]*goja.Program

func cacheKey(path, src string) string { return path + "\x00" + src }

// compileFile compiles one file of a Source by its extension: .js (and .cjs) as CommonJS, .json as
// data; other files are not modules and are skipped.
func compileFile(p, src string, cache, used programCache) (*module, error) {
	switch path.Ext(p) {
	case ".js", ".cjs":
		key := cacheKey(p, src)
		prog := cache[key]
		if prog == nil {
			var err error
			if prog, err = compileModule(p, src); err != nil {
				return nil, err
			}
		}
		used[key] = prog
		return &module{path: p, prog: prog}, nil
	case ".json":
		// A byte-order mark (some Windows editors write one) is not JSON; the registry's check
		// skips it, and so does the sandbox, or an app check accepts would not load.
		src = strings.TrimPrefix(src, "\uFEFF")
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
//
// Programs of cache are reused for files whose path and source are unchanged; used gets every
// program of the version.
func compileSource(src *Source, maxIdle int, cache, used programCache) (*version, error) {
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
		m, err := compileFile(clean, src.Commons[p], cache, used)
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
			m, err := compileFile(full, el.Files[f], cache, used)
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
