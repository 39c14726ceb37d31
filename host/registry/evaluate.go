package registry

import (
	"fmt"
	"path"
	"reflect"
	"strings"
)

// Unit keys that are not an element or a commons file.
const (
	unitApp   = "app"   // app.json and extends: a problem here keeps the whole last good snapshot
	unitLoose = "loose" // a file outside any element: reported, never blocks a reload
)

// tagged is a problem with the unit (element source or commons file) it belongs to, so a hot
// reload knows which unit to fall back to its last good version.
type tagged struct {
	Problem
	unit string
}

// candidate is everything read from disk for one (re)load, before resolution.
type candidate struct {
	apps    []*appInfo
	sources []*source      // by priority: the app's, each extended app's, the built-ins
	commons []*commonsFile // likewise
	loose   []Problem
	builtin map[string]*Element
}

// gather reads the app, the apps it extends and the built-ins. The problems it returns are
// app-level (app.json, extends). The candidate is nil only when the app itself cannot be read:
// an app with a bad extends entry still has every element read, so one check reports
// everything wrong with it, not just the first thing.
func (sc *scanner) gather(opts Options) (*candidate, []Problem) {
	apps, appProblems := loadApps(opts.AppDir)
	if len(apps) == 0 {
		return nil, appProblems
	}
	c := &candidate{apps: apps}
	for _, a := range apps {
		a.tree = a.root.walk()
		c.loose = append(c.loose, a.tree.problems...)
		prefix := a.root.osRoot + "/"
		c.sources = append(c.sources, sc.appSources(a.root, a.tree, a.root.osRoot, a.origin, "app:"+prefix)...)
		c.commons = append(c.commons, sc.appCommons(a.root, a.tree, a.origin, "commons:"+prefix)...)
	}
	if opts.Builtins != nil {
		if sc.builtin == nil {
			r := fsRoot{fsys: opts.Builtins, keyBase: "builtin:", disp: "builtin:"}
			t := r.walk()
			sc.builtin = &candidate{
				sources: sc.appSources(r, t, "", OriginBuiltin, "builtin:"),
				commons: sc.appCommons(r, t, OriginBuiltin, "builtin-commons:"),
				loose:   t.problems,
			}
			bs, _ := sc.builtin.evaluate(Options{}, nil)
			sc.builtin.builtin = bs.Elements
		}
		for _, s := range sc.builtin.sources {
			sc.use(s.key)
		}
		for _, f := range sc.builtin.commons {
			sc.use(f.key)
		}
		c.sources = append(c.sources, sc.builtin.sources...)
		c.commons = append(c.commons, sc.builtin.commons...)
		c.loose = append(c.loose, sc.builtin.loose...)
		c.builtin = sc.builtin.builtin
	}
	sc.prune()
	return c, appProblems
}

// universal are the keys every element may have, whatever its schema.
var universal = map[string]*field{
	"title":       {Type: TypeString},
	"type":        {Type: TypeString},
	"entry":       {Type: TypeString},
	"description": {Type: TypeString},
	"native":      {Type: TypeBoolean},
	"schema":      {Type: TypeObject},
	"loader":      {Type: TypeString},
}

// layerOnly limits universal keys to some layers.
var layerOnly = map[string]map[Layer]bool{
	"schema": {LayerMeta: true, LayerType: true},
	"loader": {LayerType: true},
}

// evaluation resolves one candidate into a snapshot and its problems.
type evaluation struct {
	opts    Options
	c       *candidate
	prev    *Snapshot
	winners map[string]*source
	over    map[string]Origin
	layer   map[string]Layer
	meta    map[string]string
	state   map[string]int // type resolution: 1 visiting, 2 resolved, 3 invalid
	schemas map[string]map[string]*field
	commons map[string]*commonsFile
	els     map[string]*Element
	out     []tagged
	warns   []Problem // Validators' warnings (SeverityWarning): reported, never a failure
}

const (
	stVisiting = 1
	stOK       = 2
	stInvalid  = 3
)

func (ev *evaluation) add(unit string, p Problem) {
	ev.out = append(ev.out, tagged{Problem: p, unit: unit})
}

// addAt reports an issue inside an element's e.json.
func (ev *evaluation) addAt(s *source, is issue) { ev.add(s.key, s.issueProblem(is)) }

// exists and isA answer schema "element" checks. exists counts broken elements too, so a
// reference to an element that has its own problem is not reported twice.
func (ev *evaluation) exists(name string) bool { return ev.winners[name] != nil }

func (ev *evaluation) isA(name, typeOrMeta string) bool {
	for i := 0; i < 4 && name != ""; i++ {
		if name == typeOrMeta {
			return true
		}
		s := ev.winners[name]
		if s == nil || s.raw == nil {
			return false
		}
		name, _ = s.raw["type"].(string)
	}
	return false
}

// evaluate resolves the candidate: override, layers, schemas, definitions, then every check.
// prev, when given, lends its *Element values to elements that did not change.
func (c *candidate) evaluate(opts Options, prev *Snapshot) (*Snapshot, []tagged) {
	ev := &evaluation{opts: opts, c: c, prev: prev,
		winners: map[string]*source{}, over: map[string]Origin{}, layer: map[string]Layer{}, meta: map[string]string{},
		state: map[string]int{}, schemas: map[string]map[string]*field{}, commons: map[string]*commonsFile{}, els: map[string]*Element{}}
	for _, p := range c.loose {
		ev.add(unitLoose, p)
	}
	// Override: the first source of a fullName wins; it overrides the next one's origin.
	for _, s := range c.sources {
		if s.skip {
			for _, p := range s.problems {
				ev.add(s.key, p)
			}
			continue
		}
		if w := ev.winners[s.fullName]; w != nil {
			if _, done := ev.over[s.fullName]; !done {
				ev.over[s.fullName] = s.origin
			}
			continue
		}
		ev.winners[s.fullName] = s
		for _, p := range s.problems {
			ev.add(s.key, p)
		}
	}
	for _, f := range c.commons {
		if ev.commons[f.rel] != nil {
			continue
		}
		ev.commons[f.rel] = f
		for _, p := range f.problems {
			ev.add(f.key, p)
		}
	}
	names := sortedKeys(ev.winners)
	for _, n := range names {
		ev.resolve(n)
	}
	for _, n := range names {
		if ev.state[n] == stOK {
			ev.build(ev.winners[n])
		}
	}
	for _, n := range names {
		if e := ev.els[n]; e != nil {
			ev.checkRequires(e.src)
		}
	}
	for _, rel := range sortedKeys(ev.commons) {
		ev.checkCommonsRequires(ev.commons[rel])
	}

	snap := &Snapshot{Elements: ev.els, Commons: map[string]string{}, Builtin: c.builtin, sources: c.sources, commons: c.commons,
		units: map[string]*source{}, cunits: map[string]*commonsFile{}, apps: c.apps}
	if len(c.apps) > 0 {
		snap.App = c.apps[0].app
	}
	if snap.Builtin == nil {
		snap.Builtin = map[string]*Element{}
	}
	for _, s := range c.sources {
		snap.units[s.key] = s
	}
	for _, f := range c.commons {
		snap.cunits[f.key] = f
	}
	for rel, f := range ev.commons {
		if f.js != nil || f.problems == nil {
			snap.Commons[rel] = f.content
		}
	}
	snap.sorted = sortElements(ev.els)

	// Semantic checks run on the resolved view: the built-in ones, then the host's.
	for _, e := range snap.sorted {
		if e.Layer == LayerInstance {
			ev.builtinChecks(snap, e)
		}
	}
	for _, key := range sortedKeys(opts.Validators) {
		fn := opts.Validators[key]
		if fn == nil {
			continue
		}
		for _, e := range snap.sorted {
			if e.Layer != LayerInstance || !snap.IsA(e.FullName, key) {
				continue
			}
			for _, p := range fn(snap, e) {
				if p.Element == "" {
					p.Element = e.FullName
				}
				if p.File == "" && p.Element == e.FullName && e.src != nil {
					// Without a file the problem would print as a bare fullName; its e.json is
					// where the user looks first.
					p.File = e.src.file(elementFile)
				}
				if p.Code == "" {
					p.Code = CodeInvalid
				}
				if p.Severity == SeverityWarning {
					ev.warns = append(ev.warns, p)
					continue
				}
				unit := e.src.key
				if w := ev.winners[p.Element]; w != nil {
					unit = w.key
				}
				ev.add(unit, p)
			}
		}
	}
	// Reuse equal elements of the built-ins and of the previous snapshot, so pointer equality
	// means "same": a built-in that is not overridden is the Builtin element itself.
	for n, e := range ev.els {
		if b := c.builtin[n]; b != nil && sameElement(b, e) {
			ev.els[n] = b
		} else if old := prevElement(prev, n); old != nil && sameElement(old, e) {
			ev.els[n] = old
		}
	}
	snap.sorted = sortElements(ev.els)
	sortProblems(ev.warns)
	snap.Warnings = dedupeProblems(ev.warns)
	return snap, ev.out
}

// resolve finds the layer and Meta of an element by following `type`, reporting unknown,
// cyclic and misplaced types. It is memoized.
func (ev *evaluation) resolve(name string) bool {
	switch ev.state[name] {
	case stOK:
		return true
	case stInvalid:
		return false
	case stVisiting:
		return false // the element that closes the cycle reports it
	}
	s := ev.winners[name]
	if s == nil || s.raw == nil {
		ev.state[name] = stInvalid
		return false
	}
	ev.state[name] = stVisiting
	ok := ev.resolveType(s)
	if ok {
		ev.state[name] = stOK
	} else {
		ev.state[name] = stInvalid
	}
	return ok
}

func (ev *evaluation) resolveType(s *source) bool {
	rawType, has := s.raw["type"]
	if !has {
		ev.layer[s.fullName], ev.meta[s.fullName] = LayerMeta, s.fullName
		return true
	}
	t, ok := rawType.(string)
	if !ok || t == "" {
		ev.addAt(s, issue{path: "type", code: CodeWrongType, msg: "type must be the fullName of a Type or Meta (such as \"events.NormalType\"); leave it out only for a Meta"})
		return false
	}
	target := ev.winners[t]
	if target == nil {
		ev.addAt(s, issue{path: "type", code: CodeUnknownType, msg: fmt.Sprintf("type %q does not exist%s: name an existing Type or Meta", t, suggest(t, sortedKeys(ev.winners)))})
		return false
	}
	cycle := issue{path: "type", code: CodeTypeCycle, msg: fmt.Sprintf("type %q leads back to %s: a chain of types must end at a Meta (an element without type)", t, s.fullName)}
	if t == s.fullName || ev.state[t] == stVisiting {
		ev.addAt(s, cycle)
		return false
	}
	if !ev.resolve(t) {
		if ev.inCycle(s.fullName) {
			ev.addAt(s, cycle)
		} else {
			ev.addAt(s, issue{path: "type", code: CodeBadType, msg: fmt.Sprintf("its type %q has problems of its own; fix those first", t)})
		}
		return false
	}
	switch ev.layer[t] {
	case LayerMeta:
		ev.layer[s.fullName] = LayerType
	case LayerType:
		ev.layer[s.fullName] = LayerInstance
	default:
		ev.addAt(s, issue{path: "type", code: CodeBadType, msg: fmt.Sprintf("%q is an instance, and an instance cannot be a type: name a Type (such as %q) or a Meta", t, ev.winners[t].raw["type"])})
		return false
	}
	ev.meta[s.fullName] = ev.meta[t]
	return true
}

// inCycle reports whether following types from name comes back to it.
func (ev *evaluation) inCycle(name string) bool {
	cur := name
	for i := 0; i < len(ev.winners)+1; i++ {
		s := ev.winners[cur]
		if s == nil || s.raw == nil {
			return false
		}
		next, _ := s.raw["type"].(string)
		if next == name {
			return true
		}
		if next == "" {
			return false
		}
		cur = next
	}
	return false
}

// schemaOf returns the fields instances of a Meta or Type may have (a Type's own included):
// nearest declaration wins.
func (ev *evaluation) schemaOf(name string) map[string]*field {
	if m, ok := ev.schemas[name]; ok {
		return m
	}
	s := ev.winners[name]
	out := map[string]*field{}
	if ev.layer[name] == LayerType {
		for k, f := range ev.schemaOf(ev.meta[name]) {
			out[k] = f
		}
	}
	for k, f := range s.schema {
		out[k] = f
	}
	ev.schemas[name] = out
	return out
}

// build validates one resolved element's own e.json and makes its Element.
func (ev *evaluation) build(s *source) {
	name := s.fullName
	layer := ev.layer[name]
	typeName, _ := s.raw["type"].(string)
	var allowed map[string]*field
	switch layer {
	case LayerType:
		allowed = ev.schemaOf(name)
	case LayerInstance:
		allowed = ev.schemaOf(typeName)
	}
	kind := map[Layer]string{LayerMeta: "a Meta", LayerType: "a Type of " + typeName, LayerInstance: "an instance of " + typeName}[layer]
	var issues []issue
	for _, k := range sortedKeys(s.raw) {
		v := s.raw[k]
		if k == "type" {
			continue
		}
		if u, ok := universal[k]; ok {
			if only, limited := layerOnly[k]; limited && !only[layer] {
				where := "Metas and Types"
				if k == "loader" {
					where = "Types"
				}
				issues = append(issues, issue{path: k, onKey: true, code: CodeBadType,
					msg: fmt.Sprintf("%q is only for %s, and %s is %s: remove it", k, where, name, kind)})
				continue
			}
			issues = append(issues, u.check(v, k, ev)...)
			continue
		}
		f, ok := allowed[k]
		if !ok {
			fields := sortedKeys(allowed)
			msg := fmt.Sprintf("unknown field %q%s: %s may have ", k, suggest(k, append(fields, sortedKeys(universal)...)), kind)
			if len(fields) == 0 {
				msg += "only title, description, entry, native" + map[Layer]string{LayerMeta: ", schema", LayerType: ", schema, loader"}[layer]
			} else {
				msg += strings.Join(fields, ", ") + " (besides title, description, entry, native)"
			}
			issues = append(issues, issue{path: k, onKey: true, code: CodeUnknownField, msg: msg})
			continue
		}
		issues = append(issues, f.check(v, k, ev)...)
	}
	var typeRaw map[string]any
	if layer == LayerInstance {
		typeRaw = ev.winners[typeName].raw
		for _, k := range sortedKeys(allowed) {
			if !allowed[k].Required {
				continue
			}
			if _, has := s.raw[k]; has {
				continue
			}
			if _, has := typeRaw[k]; has && universal[k] == nil {
				continue
			}
			issues = append(issues, issue{path: "", code: CodeMissingField,
				msg: fmt.Sprintf("required field %q is missing: %s must set it", k, kind)})
		}
	}

	e := &Element{FullName: name, Type: typeName, Layer: layer, Origin: s.origin, Overrides: ev.over[name], Meta: ev.meta[name],
		AppDir: s.appDir, Dir: s.dir, Raw: s.raw, Files: s.files, src: s}
	e.Title, _ = s.raw["title"].(string)
	if e.Title == "" {
		e.Title = name[strings.LastIndexByte(name, '.')+1:]
	}
	e.Native, _ = s.raw["native"].(bool)

	// Entry and loader paths: relative, inside the element, present.
	e.Entry = "index.js"
	if v, ok := s.raw["entry"].(string); ok {
		if p, msg := cleanRel(v); msg != "" {
			issues = append(issues, issue{path: "entry", code: CodeBadPath, msg: "entry " + msg})
		} else if !strings.HasSuffix(p, ".js") {
			issues = append(issues, issue{path: "entry", code: CodeBadPath, msg: fmt.Sprintf("entry %q must be a .js file", v)})
		} else if _, ok := s.files[p]; !ok {
			issues = append(issues, issue{path: "entry", code: CodeBadPath, msg: fmt.Sprintf("entry %q does not exist in %s: create it or fix entry", v, s.dir)})
		} else {
			e.Entry = p
		}
	}
	e.Exports = ev.exportsOf(s, e.Entry, 0)
	if v, ok := s.raw["loader"].(string); ok && layer == LayerType {
		if p, msg := cleanRel(v); msg != "" {
			issues = append(issues, issue{path: "loader", code: CodeBadPath, msg: "loader " + msg})
		} else if _, ok := s.files[p]; !ok || !strings.HasSuffix(p, ".js") {
			issues = append(issues, issue{path: "loader", code: CodeBadPath, msg: fmt.Sprintf("loader %q is not a .js file of %s: create it or fix the path", v, s.dir)})
		} else if !contains(ev.exportsOf(s, p, 0), "load") {
			issues = append(issues, issue{path: "loader", code: CodeMissingFunction, msg: fmt.Sprintf("loader %q does not export load: add exports.load = function (element, app) {...}", v)})
		}
	}
	for _, is := range issues {
		ev.addAt(s, is)
	}

	if layer != LayerMeta {
		e.typeSrc = ev.winners[typeName]
		e.metaSrc = ev.winners[ev.meta[name]]
	}
	if old := prevElement(ev.prev, name); old != nil && old.src == s && old.typeSrc == e.typeSrc && old.metaSrc == e.metaSrc {
		e.Definition = old.Definition // same inputs, same definition: skip rebuilding it
		ev.els[name] = e
		return
	}
	// Definition: schema defaults ← Type's values ← own values, nested defaults filled.
	def := map[string]any{}
	if layer == LayerMeta {
		for k, v := range s.raw {
			def[k] = deepCopy(v)
		}
	} else {
		for k, f := range allowed {
			if f.HasDefault {
				def[k] = deepCopy(f.Default)
			}
		}
		for k, v := range typeRaw {
			if universal[k] == nil {
				def[k] = deepCopy(v)
			}
		}
		for k, v := range s.raw {
			def[k] = deepCopy(v)
		}
		for k, f := range allowed {
			if v, ok := def[k]; ok {
				def[k] = f.withDefaults(v)
			}
		}
	}
	e.Definition = def
	ev.els[name] = e
}

// exportsOf lists what file exports, following module.exports = require("./x") a few levels.
func (ev *evaluation) exportsOf(s *source, file string, depth int) []string {
	info := s.js[file]
	if info == nil || len(info.syntax) > 0 || depth > 4 {
		return nil
	}
	out := append([]string(nil), info.exports...)
	if info.reexport == "" {
		return out
	}
	target, kind := ev.requireTarget(s, file, info.reexport)
	switch kind {
	case reqElement:
		out = append(out, ev.exportsOf(s, target, depth+1)...)
	case reqCommons:
		if c := ev.commons[target]; c != nil && c.js != nil {
			out = append(out, c.js.exports...)
		}
	}
	return out
}

// cleanRel checks a path written in e.json: relative and staying inside the element.
func cleanRel(p string) (string, string) {
	if p == "" || strings.ContainsAny(p, "\\\x00") || path.IsAbs(p) {
		return "", fmt.Sprintf("%q must be a path relative to the element's directory, such as \"index.js\"", p)
	}
	c := path.Clean(p)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Sprintf("%q leaves the element's directory; put the file inside it", p)
	}
	return c, ""
}

const (
	reqNone = iota
	reqElement
	reqCommons
	reqBad
)

// requireTarget resolves a require() the way the sandbox does: "./x" and "../x" inside the
// requiring element (x, x.js, x.json, x/index.js) and "commons/x" in the merged commons.
func (ev *evaluation) requireTarget(s *source, from, target string) (string, int) {
	candidates := func(p string) []string { return []string{p, p + ".js", p + ".json", p + "/index.js"} }
	switch {
	case strings.HasPrefix(target, "./") || strings.HasPrefix(target, "../"):
		p := path.Join(path.Dir(from), target)
		if p == ".." || strings.HasPrefix(p, "../") {
			return p, reqBad
		}
		for _, c := range candidates(p) {
			if _, ok := s.files[c]; ok {
				return c, reqElement
			}
		}
		return p, reqNone
	case strings.HasPrefix(target, "commons/"):
		p := path.Clean(target)
		if !strings.HasPrefix(p, "commons/") {
			return p, reqBad
		}
		for _, c := range candidates(p) {
			if ev.commons[c] != nil {
				return c, reqCommons
			}
		}
		return p, reqNone
	}
	return target, reqBad
}

func (ev *evaluation) checkRequires(s *source) {
	for _, file := range sortedKeys(s.js) {
		for _, r := range s.js[file].requires {
			_, kind := ev.requireTarget(s, file, r.msg)
			var msg string
			switch kind {
			case reqNone:
				msg = fmt.Sprintf("require(%q): no such module (looked for it, .js, .json and /index.js); create it or fix the path", r.msg)
			case reqBad:
				if strings.HasPrefix(r.msg, ".") {
					msg = fmt.Sprintf("require(%q) leaves the element's directory: move shared code to commons/ and require(\"commons/...\")", r.msg)
				} else {
					msg = fmt.Sprintf("require(%q) is not allowed: code may require only its element's own files (\"./x\") and commons/ modules (\"commons/x\"); there are no Node.js modules", r.msg)
				}
			default:
				continue
			}
			ev.add(s.key, Problem{Element: s.fullName, File: s.file(file), Line: r.line, Column: r.col, Code: CodeBadRequire, Message: msg})
		}
	}
}

func (ev *evaluation) checkCommonsRequires(c *commonsFile) {
	if c.js == nil {
		return
	}
	for _, r := range c.js.requires {
		target := r.msg
		ok := false
		var msg string
		switch {
		case strings.HasPrefix(target, "./") || strings.HasPrefix(target, "../"):
			p := path.Join(path.Dir(c.rel), target)
			if !strings.HasPrefix(p, "commons/") {
				msg = fmt.Sprintf("require(%q) leaves commons/: a commons module may require only other commons modules", target)
				break
			}
			target = p
			fallthrough
		case strings.HasPrefix(target, "commons/"):
			p := path.Clean(target)
			for _, cand := range []string{p, p + ".js", p + ".json", p + "/index.js"} {
				if ev.commons[cand] != nil && strings.HasPrefix(p, "commons/") {
					ok = true
				}
			}
			if !ok {
				msg = fmt.Sprintf("require(%q): no such commons module; create it or fix the path", r.msg)
			}
		default:
			msg = fmt.Sprintf("require(%q) is not allowed: commons modules may require only other commons modules; there are no Node.js modules", r.msg)
		}
		if msg != "" {
			ev.add(c.key, Problem{File: joinDisp(c.disp, c.rel), Line: r.line, Column: r.col, Code: CodeBadRequire, Message: msg})
		}
	}
}

func prevElement(prev *Snapshot, name string) *Element {
	if prev == nil {
		return nil
	}
	return prev.Elements[name]
}

// sameElement reports whether two builds of an element are interchangeable.
func sameElement(a, b *Element) bool {
	if a.src != b.src || a.Type != b.Type || a.Layer != b.Layer || a.Origin != b.Origin || a.Overrides != b.Overrides ||
		a.Meta != b.Meta || a.Entry != b.Entry || a.Title != b.Title || a.Native != b.Native || a.AppDir != b.AppDir ||
		!equalStrings(a.Exports, b.Exports) {
		return false
	}
	if a.typeSrc == b.typeSrc && a.metaSrc == b.metaSrc {
		return true // Definition is a function of these sources
	}
	return reflect.DeepEqual(a.Definition, b.Definition)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// problemsOf returns the problems, sorted and without repeats.
func problemsOf(ts []tagged) []Problem {
	ps := make([]Problem, len(ts))
	for i, t := range ts {
		ps[i] = t.Problem
	}
	sortProblems(ps)
	return dedupeProblems(ps)
}
