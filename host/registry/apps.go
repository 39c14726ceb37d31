package registry

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// appInfo is one app on the resolution path: the loaded app or one it extends.
type appInfo struct {
	root   fsRoot
	origin Origin
	doc    *jsonDoc
	raw    map[string]any
	app    App
	tree   *tree
}

// appSchema is what app.json may hold. It is written in the same schema language elements use.
var appSchema = mustSchema(`{
  "name": {"type": "string", "pattern": "^[A-Za-z0-9_][A-Za-z0-9_.-]*$"},
  "title": {"type": "string"},
  "version": {"type": "string"},
  "description": {"type": "string"},
  "extends": {"type": "array", "items": {"type": "string"}},
  "timezone": {"type": "timezone"},
  "env": {"type": "object"},
  "signals": {"type": "object", "properties": {"enabled": {"type": "boolean", "default": false}}},
  "webhooks": {"type": "object", "properties": {"allowPrivateNetwork": {"type": "boolean", "default": false}}}
}`)

func mustSchema(src string) map[string]*field {
	doc, issues := parseJSON(src)
	if len(issues) > 0 {
		panic(fmt.Sprintf("registry: built-in schema: %v", issues))
	}
	s, is := compileSchema(doc.value, "")
	if len(is) > 0 {
		panic(fmt.Sprintf("registry: built-in schema: %v", is))
	}
	return s
}

// loadApps reads the app and, depth-first in extends order, every app it extends. Every
// problem it finds is app-level: on a hot reload it keeps the whole last good snapshot.
func loadApps(appDir string) ([]*appInfo, []Problem) {
	if appDir == "" {
		return nil, []Problem{{Code: CodeNoApp, Message: "no app directory given: pass the directory that holds app.json (trellis ... --app DIR)"}}
	}
	root, err := openOSRoot(appDir, "")
	if err != nil {
		return nil, []Problem{{File: appDir, Code: CodeNoApp, Message: fmt.Sprintf("cannot open the app directory: %v; create it with `trellis init DIR` or pass the right --app", err)}}
	}
	var (
		apps     []*appInfo
		problems []Problem
		visited  = map[string]bool{}
	)
	var visit func(root fsRoot, origin Origin, stack []string)
	visit = func(root fsRoot, origin Origin, stack []string) {
		visited[root.osRoot] = true
		info, ps := readAppJSON(root, origin)
		problems = append(problems, ps...)
		if info == nil {
			return
		}
		apps = append(apps, info)
		for i, rel := range info.app.Extends {
			p := ptrIndex("extends", i)
			at := func(code, msg string) {
				l, c := info.doc.valuePos(p)
				problems = append(problems, Problem{File: joinDisp(root.disp, "app.json"), Line: l, Column: c, Code: code, Message: msg})
			}
			if rel == "" || filepath.IsAbs(rel) {
				at(CodeBadExtends, fmt.Sprintf("extends entry %q must be a path relative to this app, such as \"../base-app\"", rel))
				continue
			}
			target := filepath.Join(root.osRoot, filepath.FromSlash(rel))
			real, err := filepath.EvalSymlinks(target)
			if err != nil {
				at(CodeBadExtends, fmt.Sprintf("extended app %q cannot be opened: %v; fix the path", rel, err))
				continue
			}
			for j, s := range stack {
				if s == real {
					cycle := append(append([]string(nil), stack[j:]...), real)
					for k := range cycle {
						cycle[k] = filepath.Base(cycle[k])
					}
					at(CodeExtendsCycle, fmt.Sprintf("extends cycle %s: an app cannot extend itself; remove one of these extends", strings.Join(cycle, " → ")))
					real = ""
					break
				}
			}
			if real == "" || visited[real] {
				continue // a cycle (reported) or an app already on the path through another branch
			}
			disp, err := filepath.Rel(apps[0].root.osRoot, real)
			if err != nil {
				disp = real
			}
			child, err := openOSRoot(real, filepath.ToSlash(disp))
			if err != nil {
				at(CodeBadExtends, fmt.Sprintf("extended app %q cannot be opened: %v; fix the path", rel, err))
				continue
			}
			visit(child, OriginParent, append(stack, real))
		}
	}
	visit(root, OriginApp, []string{root.osRoot})
	if len(apps) > 0 {
		// Env: nearer apps win, so walk from the farthest.
		env := map[string]string{}
		for i := len(apps) - 1; i >= 0; i-- {
			for k, v := range apps[i].app.Env {
				env[k] = v
			}
		}
		apps[0].app.Env = env
	}
	return apps, problems
}

// readAppJSON parses and validates one app.json.
func readAppJSON(root fsRoot, origin Origin) (*appInfo, []Problem) {
	file := joinDisp(root.disp, "app.json")
	f, err := os.Open(filepath.Join(root.osRoot, "app.json"))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, []Problem{{File: file, Code: CodeNoApp, Message: "app.json not found: an app directory needs one, such as {\"name\": \"myapp\"}"}}
		}
		return nil, []Problem{{File: file, Code: CodeIO, Message: fmt.Sprintf("cannot read app.json: %v", err)}}
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, []Problem{{File: file, Code: CodeIO, Message: fmt.Sprintf("cannot read app.json: %v", err)}}
	}
	if len(b) > MaxFileSize {
		return nil, []Problem{{File: file, Code: CodeFileTooLarge, Message: "app.json is over the 1 MiB limit"}}
	}
	doc, issues := parseJSON(string(b))
	var problems []Problem
	for _, is := range issues {
		l, c := doc.lineCol(is.offset)
		problems = append(problems, Problem{File: file, Line: l, Column: c, Code: is.code, Message: is.msg})
	}
	if len(issues) > 0 && issues[0].code == CodeBadJSON {
		return nil, problems
	}
	raw, ok := doc.value.(map[string]any)
	if !ok {
		return nil, append(problems, Problem{File: file, Line: 1, Column: 1, Code: CodeWrongType, Message: "app.json must be a JSON object such as {\"name\": \"myapp\"}"})
	}
	place := func(is issue) Problem {
		l, c := doc.valuePos(is.path)
		if is.onKey {
			l, c = doc.keyPos(is.path)
		}
		return Problem{File: file, Line: l, Column: c, Code: is.code, Message: is.msg}
	}
	for _, is := range checkObject(appSchema, raw, "", nil, false) {
		problems = append(problems, place(is))
	}
	if env, ok := raw["env"].(map[string]any); ok {
		for _, k := range sortedKeys(env) {
			if _, ok := env[k].(string); !ok {
				problems = append(problems, place(issue{path: ptr("env", k), code: CodeWrongType,
					msg: fmt.Sprintf("env variable %q must be a string, not %s; quote it", k, describe(env[k]))}))
			}
		}
	}
	info := &appInfo{root: root, origin: origin, doc: doc, raw: raw}
	a := &info.app
	a.Raw, a.Dir = raw, root.osRoot
	a.Name, _ = raw["name"].(string)
	if a.Name == "" {
		a.Name = filepath.Base(root.osRoot)
	}
	a.Title, _ = raw["title"].(string)
	a.Version, _ = raw["version"].(string)
	a.Description, _ = raw["description"].(string)
	a.Timezone, _ = raw["timezone"].(string)
	if ext, ok := raw["extends"].([]any); ok {
		for _, x := range ext {
			if s, ok := x.(string); ok {
				a.Extends = append(a.Extends, s)
			}
		}
	}
	a.Env = map[string]string{}
	if env, ok := raw["env"].(map[string]any); ok {
		for k, v := range env {
			if s, ok := v.(string); ok {
				a.Env[k] = s
			}
		}
	}
	if sig, ok := raw["signals"].(map[string]any); ok {
		a.Signals.Enabled, _ = sig["enabled"].(bool)
	}
	return info, problems
}
