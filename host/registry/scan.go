package registry

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// MaxFileSize is the largest file the registry reads. Bigger files are a problem, never read:
// element code is source, not data, and a huge file would stall every reload.
const MaxFileSize = 1 << 20

// elementFile is the e.json of an element: a directory holding it is an element.
const elementFile = "e.json"

// codeExts are the file kinds an element carries (Element.Files); others are ignored.
var codeExts = map[string]bool{".js": true, ".json": true, ".md": true}

// source is one element directory as read and parsed, before resolution. It depends only on
// the directory's files, so it is cached across reloads by a fingerprint of their contents.
type source struct {
	key      string // unit key: "app:" + abs dir, or "builtin:" + dir
	fullName string
	dir      string // slash path relative to its app root
	appDir   string // absolute app root; "" for built-ins
	disp     string // prefix that makes dir relative to the main app ("", "../base", "builtin:")
	origin   Origin
	fp       uint64

	raw      map[string]any // nil when e.json is broken
	doc      *jsonDoc
	files    map[string]string
	js       map[string]*jsInfo
	schema   map[string]*field
	problems []Problem // problems found reading and parsing (JSON, JS syntax, paths, sizes)
	skip     bool      // the directory cannot be an element at all
}

// file is the display path of one of the element's files.
func (s *source) file(name string) string { return joinDisp(s.disp, path.Join(s.dir, name)) }

func joinDisp(disp, rel string) string {
	switch {
	case disp == "":
		return rel
	case strings.HasSuffix(disp, ":"):
		return disp + rel
	}
	return path.Join(disp, rel)
}

// commonsFile is one module under an app's commons/ directory.
type commonsFile struct {
	key      string // "commons:" + abs path, or "builtin-commons:" + path
	rel      string // "commons/x.js"
	disp     string
	origin   Origin
	content  string
	js       *jsInfo // nil for .json
	problems []Problem
	fp       uint64
}

// fileRef is a file found by the walk, not yet read.
type fileRef struct {
	rel  string // relative to the element directory (or the app root for commons)
	name string // path inside the walked fs.FS
	key  string // cache key (absolute path, or "builtin:" + name)
	size int64
	mod  int64
}

type elemDir struct {
	rel      string
	files    []fileRef
	problems []Problem
	skip     bool
}

// tree is one walked app: its element directories and commons files.
type tree struct {
	dirs     []*elemDir
	commons  []fileRef
	problems []Problem // problems outside any element (a symlink at the top level...)
}

// fileRec is a cached file read.
type fileRec struct {
	size, mod int64
	content   string
	hash      uint64
}

// scanner reads app trees, caching file contents and parsed sources so that a reload of an
// unchanged element costs a stat, not a parse. A scanner is used by one goroutine at a time.
type scanner struct {
	files   map[string]*fileRec
	sources map[string]*source
	commons map[string]*commonsFile
	dirty   map[string]bool // paths (files or directories) to re-read regardless of stat
	builtin *candidate      // the built-ins, read once: they cannot change while running
	seen    map[string]bool // cache keys used by the current gather, for pruning
}

// prune forgets cached files, sources and commons that the last gather did not use (deleted
// from disk), so a long-running watcher does not grow.
func (sc *scanner) prune() {
	for k := range sc.files {
		if !sc.seen[k] {
			delete(sc.files, k)
		}
	}
	for k := range sc.sources {
		if !sc.seen[k] {
			delete(sc.sources, k)
		}
	}
	for k := range sc.commons {
		if !sc.seen[k] {
			delete(sc.commons, k)
		}
	}
	sc.seen = nil
}

func (sc *scanner) use(key string) {
	if sc.seen == nil {
		sc.seen = map[string]bool{}
	}
	sc.seen[key] = true
}

func newScanner() *scanner {
	return &scanner{files: map[string]*fileRec{}, sources: map[string]*source{}, commons: map[string]*commonsFile{}}
}

// fsRoot is something to walk: an OS directory (real path, symlinks resolved) or an fs.FS.
type fsRoot struct {
	fsys    fs.FS
	osRoot  string // "" for a plain fs.FS (built-ins): no symlink handling needed
	keyBase string // prefix of cache keys for fs.FS roots
	disp    string
}

func (r fsRoot) key(name string) string {
	if r.osRoot != "" {
		return filepath.Join(r.osRoot, filepath.FromSlash(name))
	}
	return r.keyBase + name
}

// walk finds element directories and commons files under root. Dot-directories (".trellis"
// holds the host's data) and node_modules are skipped; symlinks are followed only to files
// inside the app.
func (r fsRoot) walk() *tree {
	t := &tree{}
	var visit func(rel string, cur *elemDir)
	visit = func(rel string, cur *elemDir) {
		name := rel
		if name == "" {
			name = "."
		}
		entries, err := fs.ReadDir(r.fsys, name)
		if err != nil {
			p := Problem{File: joinDisp(r.disp, rel), Code: CodeIO, Message: fmt.Sprintf("cannot read directory: %v", err)}
			if cur != nil {
				cur.problems = append(cur.problems, p)
			} else {
				t.problems = append(t.problems, p)
			}
			return
		}
		if rel != "" {
			for _, e := range entries {
				if e.Name() == elementFile && !e.IsDir() {
					cur = &elemDir{rel: rel}
					t.dirs = append(t.dirs, cur)
					for _, seg := range strings.Split(rel, "/") {
						if strings.ContainsAny(seg, ". \t") {
							cur.skip = true
							cur.problems = append(cur.problems, Problem{File: joinDisp(r.disp, path.Join(rel, elementFile)), Code: CodeBadPath,
								Message: fmt.Sprintf("directory name %q cannot name an element: fullNames join directories with \".\", so rename it without dots or spaces", seg)})
							break
						}
					}
					break
				}
			}
		}
		for _, e := range entries {
			n := e.Name()
			if strings.HasPrefix(n, ".") || n == "node_modules" || (rel == "" && (n == "commons" || n == "app.json")) {
				continue
			}
			childRel := path.Join(rel, n)
			report := func(code, msg string) {
				p := Problem{File: joinDisp(r.disp, childRel), Code: code, Message: msg}
				if cur != nil {
					p.Element = ""
					cur.problems = append(cur.problems, p)
				} else {
					t.problems = append(t.problems, p)
				}
			}
			info, isDir, ok := r.stat(e, childRel, report)
			if !ok {
				continue
			}
			if isDir {
				visit(childRel, cur)
				continue
			}
			if cur == nil || !codeExts[path.Ext(n)] {
				continue
			}
			if info.Size() > MaxFileSize {
				report(CodeFileTooLarge, fmt.Sprintf("file is %d bytes, over the %d-byte limit: move data out of the element", info.Size(), MaxFileSize))
				continue
			}
			cur.files = append(cur.files, fileRef{rel: strings.TrimPrefix(childRel, cur.rel+"/"), name: childRel,
				key: r.key(childRel), size: info.Size(), mod: info.ModTime().UnixNano()})
		}
	}
	visit("", nil)
	// commons/
	if info, err := fs.Stat(r.fsys, "commons"); err == nil && info.IsDir() {
		_ = fs.WalkDir(r.fsys, "commons", func(name string, e fs.DirEntry, err error) error {
			if err != nil {
				t.problems = append(t.problems, Problem{File: joinDisp(r.disp, name), Code: CodeIO, Message: fmt.Sprintf("cannot read: %v", err)})
				return nil
			}
			if name == "commons" {
				return nil
			}
			if strings.HasPrefix(e.Name(), ".") || e.Name() == "node_modules" {
				if e.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			report := func(code, msg string) {
				t.problems = append(t.problems, Problem{File: joinDisp(r.disp, name), Code: code, Message: msg})
			}
			info, isDir, ok := r.stat(e, name, report)
			if !ok || isDir {
				return nil
			}
			if ext := path.Ext(name); ext != ".js" && ext != ".json" {
				return nil
			}
			if info.Size() > MaxFileSize {
				report(CodeFileTooLarge, fmt.Sprintf("file is %d bytes, over the %d-byte limit", info.Size(), MaxFileSize))
				return nil
			}
			t.commons = append(t.commons, fileRef{rel: name, name: name, key: r.key(name), size: info.Size(), mod: info.ModTime().UnixNano()})
			return nil
		})
	}
	return t
}

// stat returns what a directory entry is, following a symlink only when it stays inside the
// app and leads to a file.
func (r fsRoot) stat(e fs.DirEntry, rel string, report func(code, msg string)) (fs.FileInfo, bool, bool) {
	if e.Type()&fs.ModeSymlink == 0 || r.osRoot == "" {
		if e.IsDir() {
			return nil, true, true
		}
		if !e.Type().IsRegular() {
			return nil, false, false
		}
		info, err := e.Info()
		if err != nil {
			report(CodeIO, fmt.Sprintf("cannot stat: %v", err))
			return nil, false, false
		}
		return info, false, true
	}
	abs := filepath.Join(r.osRoot, filepath.FromSlash(rel))
	target, err := filepath.EvalSymlinks(abs)
	if err != nil {
		report(CodeIO, fmt.Sprintf("broken symlink: %v", err))
		return nil, false, false
	}
	if !within(r.osRoot, target) {
		report(CodeOutsideApp, "symlink leads outside the app directory; copy the file into the app instead")
		return nil, false, false
	}
	info, err := os.Stat(target)
	if err != nil {
		report(CodeIO, fmt.Sprintf("cannot stat: %v", err))
		return nil, false, false
	}
	if info.IsDir() {
		report(CodeBadPath, "symlinked directories are not followed; move the directory into place instead")
		return nil, false, false
	}
	return info, false, true
}

// within reports whether p is root or below it (both cleaned, absolute, symlinks resolved).
func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// read returns a file's content, from the cache when its size and mtime are unchanged and no
// watcher event marked it dirty.
func (sc *scanner) read(r fsRoot, f fileRef) (*fileRec, error) {
	sc.use(f.key)
	if rec, ok := sc.files[f.key]; ok && rec.size == f.size && rec.mod == f.mod && !sc.isDirty(f.key) {
		return rec, nil
	}
	fh, err := r.fsys.Open(f.name)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("file grew over the %d-byte limit while being read", MaxFileSize)
	}
	h := fnv.New64a()
	h.Write(b)
	rec := &fileRec{size: f.size, mod: f.mod, content: string(b), hash: h.Sum64()}
	sc.files[f.key] = rec
	return rec, nil
}

func (sc *scanner) isDirty(key string) bool {
	if len(sc.dirty) == 0 {
		return false
	}
	for p := key; ; {
		if sc.dirty[p] {
			return true
		}
		parent := filepath.Dir(p)
		if parent == p || parent == "." || parent == "/" {
			return false
		}
		p = parent
	}
}

// appSources reads and parses every element of one walked app, reusing cached sources whose
// files did not change. Parsing runs on all cores: it is the expensive part of a cold load.
func (sc *scanner) appSources(r fsRoot, t *tree, appDir string, origin Origin, keyPrefix string) []*source {
	out := make([]*source, len(t.dirs))
	type job struct {
		i      int
		d      *elemDir
		key    string
		fp     uint64
		texts  map[string]string
		readPs []Problem
	}
	var jobs []job
	for i, d := range t.dirs {
		key := keyPrefix + d.rel
		sc.use(key)
		texts := make(map[string]string, len(d.files))
		h := fnv.New64a()
		var readPs []Problem
		for _, f := range d.files {
			rec, err := sc.read(r, f)
			if err != nil {
				readPs = append(readPs, Problem{File: joinDisp(r.disp, f.name), Code: CodeIO, Message: fmt.Sprintf("cannot read: %v", err)})
				continue
			}
			texts[f.rel] = rec.content
			fmt.Fprintf(h, "%s\x00%d\x00", f.rel, rec.hash)
		}
		for _, p := range append(d.problems, readPs...) {
			fmt.Fprintf(h, "%s\x00", p.String())
		}
		fp := h.Sum64()
		if s, ok := sc.sources[key]; ok && s.fp == fp && s.disp == r.disp && s.origin == origin {
			out[i] = s
			continue
		}
		jobs = append(jobs, job{i: i, d: d, key: key, fp: fp, texts: texts, readPs: readPs})
	}
	workers := min(runtime.GOMAXPROCS(0), len(jobs))
	var wg sync.WaitGroup
	next := make(chan job)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				s := parseSource(j.d, j.texts, append(append([]Problem(nil), j.d.problems...), j.readPs...), r.disp)
				s.key, s.fp, s.appDir, s.origin = j.key, j.fp, appDir, origin
				for i := range s.problems {
					s.problems[i].Element = s.fullName
				}
				out[j.i] = s
			}
		}()
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	for _, j := range jobs {
		sc.sources[j.key] = out[j.i]
	}
	return out
}

// appCommons reads and parses an app's commons/ modules.
func (sc *scanner) appCommons(r fsRoot, t *tree, origin Origin, keyPrefix string) []*commonsFile {
	out := make([]*commonsFile, 0, len(t.commons))
	for _, f := range t.commons {
		key := keyPrefix + f.name
		sc.use(key)
		rec, err := sc.read(r, f)
		if err != nil {
			out = append(out, &commonsFile{key: key, rel: f.rel, disp: r.disp, origin: origin,
				problems: []Problem{{File: joinDisp(r.disp, f.name), Code: CodeIO, Message: fmt.Sprintf("cannot read: %v", err)}}})
			continue
		}
		if c, ok := sc.commons[key]; ok && c.fp == rec.hash && c.disp == r.disp {
			out = append(out, c)
			continue
		}
		c := &commonsFile{key: key, rel: f.rel, disp: r.disp, origin: origin, content: rec.content, fp: rec.hash}
		file := joinDisp(r.disp, f.rel)
		if strings.HasSuffix(f.rel, ".js") {
			c.js = analyzeJS(f.rel, rec.content)
			for _, e := range c.js.syntax {
				c.problems = append(c.problems, Problem{File: file, Line: e.line, Column: e.col, Code: CodeJSSyntax, Message: e.msg})
			}
		} else {
			c.problems = append(c.problems, jsonSyntaxProblems(rec.content, file, "")...)
		}
		sc.commons[key] = c
		out = append(out, c)
	}
	return out
}

// parseSource parses one element directory's files. It is pure: same files, same source.
func parseSource(d *elemDir, texts map[string]string, problems []Problem, disp string) *source {
	s := &source{dir: d.rel, disp: disp, fullName: strings.ReplaceAll(d.rel, "/", "."), files: texts, js: map[string]*jsInfo{}, skip: d.skip, problems: problems}
	names := make([]string, 0, len(texts))
	for n := range texts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		file := s.file(n)
		switch {
		case n == elementFile:
			doc, issues := parseJSON(texts[n])
			s.doc = doc
			for _, is := range issues {
				l, c := doc.lineCol(is.offset)
				s.problems = append(s.problems, Problem{File: file, Line: l, Column: c, Code: is.code, Message: is.msg})
			}
			if len(issues) > 0 && issues[0].code == CodeBadJSON {
				continue
			}
			m, ok := doc.value.(map[string]any)
			if !ok {
				s.problems = append(s.problems, Problem{File: file, Line: 1, Column: 1, Code: CodeWrongType,
					Message: "e.json must be a JSON object such as {\"title\": \"...\", \"type\": \"...\"}"})
				continue
			}
			s.raw = m
		case strings.HasSuffix(n, ".js"):
			info := analyzeJS(n, texts[n])
			s.js[n] = info
			for _, e := range info.syntax {
				s.problems = append(s.problems, Problem{File: file, Line: e.line, Column: e.col, Code: CodeJSSyntax, Message: e.msg})
			}
		case strings.HasSuffix(n, ".json"):
			s.problems = append(s.problems, jsonSyntaxProblems(texts[n], file, "")...)
		}
	}
	if _, hasE := texts[elementFile]; !hasE && !d.skip {
		// e.json was seen by the walk but could not be read: the read problem is already listed.
		s.skip = true
	}
	if s.raw != nil {
		if rawSchema, ok := s.raw["schema"]; ok {
			sch, issues := compileSchema(rawSchema, "schema")
			s.schema = sch
			for _, is := range issues {
				s.problems = append(s.problems, s.issueProblem(is))
			}
		}
	}
	return s
}

// issueProblem places an issue found in the element's e.json.
func (s *source) issueProblem(is issue) Problem {
	var l, c int
	if is.onKey {
		l, c = s.doc.keyPos(is.path)
	} else {
		l, c = s.doc.valuePos(is.path)
	}
	return Problem{Element: s.fullName, File: s.file(elementFile), Line: l, Column: c, Code: is.code, Message: is.msg}
}

// jsonSyntaxProblems checks a JSON file other than e.json (a data file an element requires).
func jsonSyntaxProblems(text, file, element string) []Problem {
	doc, issues := parseJSON(text)
	var out []Problem
	for _, is := range issues {
		l, c := doc.lineCol(is.offset)
		out = append(out, Problem{Element: element, File: file, Line: l, Column: c, Code: is.code, Message: is.msg})
	}
	return out
}

// osRoot opens an app directory for walking, with its real path.
func openOSRoot(dir, disp string) (fsRoot, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fsRoot{}, err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fsRoot{}, err
	}
	info, err := os.Stat(real)
	if err != nil {
		return fsRoot{}, err
	}
	if !info.IsDir() {
		return fsRoot{}, errors.New("not a directory")
	}
	return fsRoot{fsys: os.DirFS(real), osRoot: real, disp: disp}, nil
}
