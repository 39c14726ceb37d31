package host

import (
	"strings"
	"time"

	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/modelrt"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/services"
)

// SourceOf turns an app snapshot into what the sandbox runs: JS elements with their files,
// built-in Go services as host proxies with their declared methods, and everything else as data.
func SourceOf(s *registry.Snapshot) *jsvm.Source {
	src := &jsvm.Source{
		AppName:  s.App.Name,
		Env:      s.App.Env,
		Timezone: s.App.Timezone,
		Elements: make(map[string]*jsvm.Element, len(s.Elements)),
		Commons:  s.Commons,
	}
	for name, el := range s.Elements {
		src.Elements[name] = sandboxElement(s, el)
		if isModel(s, el) {
			// The model's runtime object is the host's CRUD proxy; its own code (lifecycle
			// functions) runs under a name of its own.
			src.Elements[name] = &jsvm.Element{FullName: name, Kind: jsvm.KindHost, Methods: modelrt.Methods,
				Dir: el.Dir, Definition: el.Definition}
			if el.Files[el.Entry] != "" {
				src.Elements[name+lifecycleSuffix] = &jsvm.Element{FullName: name + lifecycleSuffix, Kind: jsvm.KindJS,
					Dir: el.Dir, Entry: el.Entry, Files: jsFiles(el.Files), Definition: el.Definition,
					Timeout: durationField(el.Definition, "timeout")}
			}
		}
	}
	// Built-ins the app overrides stay reachable through app.getBuiltin, which the host serves
	// from Snapshot.Builtin; the sandbox needs only their method names.
	for name, el := range s.Builtin {
		if _, overridden := src.Elements[name]; overridden && el.Native {
			continue
		}
		if _, ok := src.Elements[name]; !ok {
			src.Elements[name] = sandboxElement(s, el)
		}
	}
	return src
}

func sandboxElement(s *registry.Snapshot, el *registry.Element) *jsvm.Element {
	out := &jsvm.Element{
		FullName:   el.FullName,
		Dir:        el.Dir,
		Entry:      el.Entry,
		Definition: el.Definition,
		Timeout:    durationField(el.Definition, "timeout"),
	}
	switch {
	case el.Native:
		out.Kind = jsvm.KindHost
		for _, f := range services.ParseFunctionList(el.Definition) {
			out.Methods = append(out.Methods, f.Name)
		}
	case el.Files[el.Entry] != "" && el.Layer == registry.LayerInstance:
		out.Kind = jsvm.KindJS
		out.Files = jsFiles(el.Files)
	default:
		out.Kind = jsvm.KindData
		out.Files = jsFiles(el.Files)
	}
	out.Loader = loaderOf(s, el)
	return out
}

// loaderOf names the nearest Type on el's chain whose loader.js builds el's runtime object
// (JitAi's loader chain), or "" when el's own index.js is its runtime object.
func loaderOf(s *registry.Snapshot, el *registry.Element) string {
	if el.Layer != registry.LayerInstance {
		return ""
	}
	for _, t := range s.Chain(el.FullName)[1:] {
		if loader, _ := t.Definition["loader"].(string); loader != "" && t.Files[loader] != "" {
			return t.FullName
		}
	}
	return ""
}

// jsFiles keeps only the files code can require: sources, not e.json or docs.
func jsFiles(files map[string]string) map[string]string {
	out := make(map[string]string, len(files))
	for name, text := range files {
		if (strings.HasSuffix(name, ".js") || strings.HasSuffix(name, ".json")) && name != "e.json" {
			out[name] = text
		}
	}
	return out
}

func durationField(def map[string]any, key string) time.Duration {
	s, _ := def[key].(string)
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0
	}
	return d
}
