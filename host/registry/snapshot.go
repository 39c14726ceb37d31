package registry

import (
	"reflect"
	"sort"
)

// Layer is an element's place in JitAi's Meta → Type → instance model, found from its `type`:
// no type makes a Meta, a Meta as type makes a Type, a Type as type makes an instance.
type Layer string

// The three layers.
const (
	LayerMeta     Layer = "meta"
	LayerType     Layer = "type"
	LayerInstance Layer = "instance"
)

// Origin says which app an element came from.
type Origin string

// Where an element can come from. Resolution prefers them in this order.
const (
	OriginApp     Origin = "app"     // the app being loaded
	OriginParent  Origin = "parent"  // an app it extends, directly or not
	OriginBuiltin Origin = "builtin" // the platform's own elements (Options.Builtins)
)

// App is the parsed app.json of the loaded app.
type App struct {
	// Name is what `app.name` returns in JavaScript; the directory's name when app.json has none.
	Name string `json:"name"`
	// Title, Version and Description are shown by the editor and `trellis check`.
	Title       string `json:"title,omitempty"`
	Version     string `json:"version,omitempty"`
	Description string `json:"description,omitempty"`
	// Extends lists the extended apps as written (relative paths).
	Extends []string `json:"extends,omitempty"`
	// Timezone is the IANA name datetimes use ("" = UTC).
	Timezone string `json:"timezone,omitempty"`
	// Env holds the variables app.json declares, over those of the apps it extends, so an
	// element inherited from a parent still finds its own variables.
	Env map[string]string `json:"env,omitempty"`
	// Signals says whether the engine emits signals (docs/reference.md §5).
	Signals Signals `json:"signals"`
	// Dir is the app directory: absolute, symlinks resolved.
	Dir string `json:"dir"`
	// Raw is app.json as written.
	Raw map[string]any `json:"-"`
}

// Signals is app.json's "signals" object.
type Signals struct {
	// Enabled turns signal emission on; off by default because every node operation emits one.
	Enabled bool `json:"enabled"`
}

// Element is one resolved element. Elements are immutable once in a Snapshot, and a reload
// reuses the same *Element for an element that did not change, so comparing pointers between
// two snapshots tells what changed.
type Element struct {
	// FullName is its directory path from the app root with "/" replaced by ".".
	FullName string `json:"fullName"`
	// Title is e.json's title, or the last part of the fullName when it has none.
	Title string `json:"title"`
	// Type is the fullName of its Type or Meta ("" for a Meta).
	Type string `json:"type,omitempty"`
	// Layer is found from the chain of types; the engine uses instances only.
	Layer Layer `json:"layer"`
	// Origin is the app it came from; Overrides what it replaced there ("" for nothing), so
	// the editor can show "overrides built-in".
	Origin    Origin `json:"origin"`
	Overrides Origin `json:"overrides,omitempty"`
	// Meta is the Meta at the root of its chain ("events.Meta"); a Meta's is itself.
	Meta string `json:"meta"`
	// AppDir is the directory of the app it came from ("" for built-ins); Dir is its directory
	// relative to that app ("services/BackupSvc"). AppDir/Dir/Entry is its entry file.
	AppDir string `json:"appDir,omitempty"`
	Dir    string `json:"dir"`
	// Entry is the entry file relative to Dir ("index.js" unless e.json says otherwise).
	Entry string `json:"entry"`
	// Raw is its own e.json. Definition is what the host runs with: the schema defaults of its
	// chain, then its Type's values, then its own (nested defaults filled in). Neither may be
	// modified: snapshots share them.
	Raw        map[string]any `json:"-"`
	Definition map[string]any `json:"definition"`
	// Files holds every .js, .json and .md file of its directory tree (e.json included, nested
	// elements excluded), keyed by path relative to Dir. It must not be modified.
	Files map[string]string `json:"-"`
	// Exports lists the functions its entry module exports, found by static analysis.
	Exports []string `json:"exports,omitempty"`
	// Native is set on elements the host implements in Go (EventSvc, TaskSvc).
	Native bool `json:"native,omitempty"`

	// src and the sources of its Type and Meta determine Definition: when all three are the
	// same objects as in the previous snapshot, so is the Definition.
	src, typeSrc, metaSrc *source
}

// HasExport reports whether the entry module exports a function of that name.
func (e *Element) HasExport(name string) bool {
	for _, x := range e.Exports {
		if x == name {
			return true
		}
	}
	return false
}

// Functions lists the names in its functionList (services), which is how native elements say
// what they offer.
func (e *Element) Functions() []string {
	list, _ := e.Definition["functionList"].([]any)
	var out []string
	for _, f := range list {
		if m, ok := f.(map[string]any); ok {
			if n, ok := m["name"].(string); ok {
				out = append(out, n)
			}
		}
	}
	return out
}

// Snapshot is one consistent version of an app: every element resolved and valid (or, after a
// hot reload, kept at its last good version). A Snapshot is immutable and safe to share
// between goroutines; a reload makes a new one.
type Snapshot struct {
	// App is the loaded app's app.json.
	App App
	// Elements is the resolved view: each fullName once, after override.
	Elements map[string]*Element
	// Commons maps "commons/x.js" to its source: the app's own, over those of extended apps.
	Commons map[string]string
	// Builtin holds the built-in elements as shipped, also where the app overrides them
	// (app.getBuiltin reaches them).
	Builtin map[string]*Element
	// Problems is empty after Load. After a hot reload it lists what is wrong with the files
	// on disk while the snapshot serves the last good version of those elements.
	Problems []Problem
	// Warnings are the Validators' warnings about this version (SeverityWarning), sorted by file
	// and position: printed by `trellis check`, never a reason not to load.
	Warnings []Problem
	// Version increases with every snapshot a Watcher publishes.
	Version uint64

	sources []*source               // what the elements were built from, by priority
	commons []*commonsFile          // likewise for commons
	units   map[string]*source      // source key → source, for last-good fallback
	cunits  map[string]*commonsFile // commons key → file
	apps    []*appInfo              // the app and the apps it extends, in resolution order
	sorted  []*Element
	disk    map[string]*source // fullName → its broken version on disk, where a reload fell back
}

// Sorted returns the elements ordered by fullName.
func (s *Snapshot) Sorted() []*Element {
	return s.sorted
}

// Chain returns the element, its Type and its Meta, nearest first (a Type's chain has two
// entries, a Meta's one). It returns nil for an unknown fullName.
func (s *Snapshot) Chain(fullName string) []*Element {
	var out []*Element
	for e := s.Elements[fullName]; e != nil && len(out) < 3; e = s.Elements[e.Type] {
		out = append(out, e)
		if e.Type == "" {
			break
		}
	}
	return out
}

// IsA reports whether typeOrMeta is on the chain of fullName (an element is a itself), which is
// how "every element of that type or a subtype" is decided.
func (s *Snapshot) IsA(fullName, typeOrMeta string) bool {
	for _, e := range s.Chain(fullName) {
		if e.FullName == typeOrMeta {
			return true
		}
	}
	return false
}

// Element returns the element of that fullName, or nil.
func (s *Snapshot) Element(fullName string) *Element { return s.Elements[fullName] }

func sortElements(m map[string]*Element) []*Element {
	out := make([]*Element, 0, len(m))
	for _, e := range m {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].FullName < out[j].FullName })
	return out
}

// SameFiles reports whether o was built from exactly the files s was (every element's
// fingerprint, every commons file, app.json): a load that found nothing new, which a caller can
// skip instead of recompiling the app.
func (s *Snapshot) SameFiles(o *Snapshot) bool {
	if s == o {
		return true
	}
	if len(s.units) != len(o.units) || len(s.cunits) != len(o.cunits) || !reflect.DeepEqual(s.App, o.App) {
		return false
	}
	for k, u := range s.units {
		if v := o.units[k]; v == nil || v.fp != u.fp {
			return false
		}
	}
	for k, c := range s.cunits {
		if d := o.cunits[k]; d == nil || d.fp != c.fp {
			return false
		}
	}
	return true
}
