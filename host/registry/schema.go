package registry

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"
	_ "time/tzdata" // timezones validate the same on hosts without a zoneinfo database
)

// Field types a schema may use.
const (
	TypeString   = "string"
	TypeBoolean  = "boolean"
	TypeInteger  = "integer"
	TypeNumber   = "number"
	TypeObject   = "object"
	TypeArray    = "array"
	TypeAny      = "any"
	TypeDuration = "duration" // a Go duration string: "30s", "5m", "1h30m"
	TypeCron     = "cron"     // a string here; its syntax is the scheduler's, checked by a Validator
	TypeTimezone = "timezone" // an IANA name, as time.LoadLocation takes it
	TypeElement  = "element"  // the fullName of an existing element
)

var fieldTypes = map[string]bool{
	TypeString: true, TypeBoolean: true, TypeInteger: true, TypeNumber: true, TypeObject: true,
	TypeArray: true, TypeAny: true, TypeDuration: true, TypeCron: true, TypeTimezone: true, TypeElement: true,
}

// field is one compiled entry of a schema: what a value must look like.
type field struct {
	Type        string
	Default     any
	HasDefault  bool
	Required    bool
	Enum        []any
	Items       *field
	Properties  map[string]*field // nil: any keys; non-nil: exactly these keys
	Signed      bool              // duration: negative allowed
	Meta        string            // element: must belong to this Meta (or Type)
	Pattern     *regexp.Regexp    // string: must match
	Minimum     *float64          // integer/number
	Maximum     *float64          // integer/number
	Title       string
	Description string
}

var fieldKeys = map[string]bool{
	"type": true, "default": true, "required": true, "enum": true, "items": true, "properties": true,
	"signed": true, "meta": true, "pattern": true, "minimum": true, "maximum": true, "title": true, "description": true,
}

// issue is a problem found in a JSON value, located by its JSON path inside the document.
type issue struct {
	path  string
	onKey bool // point at the key (unknown field) rather than the value
	code  string
	msg   string
}

// compileSchema turns an e.json "schema" object into fields, reporting every malformed entry.
func compileSchema(raw any, path string) (map[string]*field, []issue) {
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, []issue{{path: path, code: CodeBadSchema, msg: "schema must be an object of {\"field\": {\"type\": ...}}"}}
	}
	out := make(map[string]*field, len(m))
	var issues []issue
	for _, name := range sortedKeys(m) {
		f, is := compileField(m[name], ptr(path, name))
		issues = append(issues, is...)
		if f != nil {
			out[name] = f
		}
	}
	return out, issues
}

func compileField(raw any, path string) (*field, []issue) {
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, []issue{{path: path, code: CodeBadSchema, msg: "a schema field must be an object such as {\"type\": \"string\"}"}}
	}
	var issues []issue
	bad := func(p, format string, a ...any) {
		issues = append(issues, issue{path: p, code: CodeBadSchema, msg: fmt.Sprintf(format, a...)})
	}
	for _, k := range sortedKeys(m) {
		if !fieldKeys[k] {
			issues = append(issues, issue{path: ptr(path, k), onKey: true, code: CodeBadSchema,
				msg: fmt.Sprintf("unknown schema key %q%s; a field may have: %s", k, suggest(k, keysOf(fieldKeys)), strings.Join(sortedKeys(fieldKeys), ", "))})
		}
	}
	f := &field{}
	t, _ := m["type"].(string)
	if !fieldTypes[t] {
		bad(ptr(path, "type"), "schema field type %q is not one of: %s", t, strings.Join(sortedKeys(fieldTypes), ", "))
		return nil, issues
	}
	f.Type = t
	boolKey := func(k string) bool {
		v, has := m[k]
		if !has {
			return false
		}
		b, ok := v.(bool)
		if !ok {
			bad(ptr(path, k), "%q must be true or false", k)
		}
		return b
	}
	strKey := func(k string) string {
		v, has := m[k]
		if !has {
			return ""
		}
		s, ok := v.(string)
		if !ok {
			bad(ptr(path, k), "%q must be a string", k)
		}
		return s
	}
	numKey := func(k string) *float64 {
		v, has := m[k]
		if !has {
			return nil
		}
		n, ok := v.(float64)
		if !ok {
			bad(ptr(path, k), "%q must be a number", k)
			return nil
		}
		return &n
	}
	f.Required = boolKey("required")
	f.Signed = boolKey("signed")
	f.Title = strKey("title")
	f.Description = strKey("description")
	f.Meta = strKey("meta")
	f.Minimum = numKey("minimum")
	f.Maximum = numKey("maximum")
	if p := strKey("pattern"); p != "" {
		re, err := regexp.Compile(p)
		if err != nil {
			bad(ptr(path, "pattern"), "pattern is not a valid regular expression: %v", err)
		}
		f.Pattern = re
	}
	if v, has := m["enum"]; has {
		a, ok := v.([]any)
		if !ok || len(a) == 0 {
			bad(ptr(path, "enum"), "enum must be a non-empty array of the allowed values")
		}
		f.Enum = a
	}
	if v, has := m["items"]; has {
		if t != TypeArray {
			bad(ptr(path, "items"), "items is only for \"type\": \"array\"")
		} else {
			it, is := compileField(v, ptr(path, "items"))
			issues = append(issues, is...)
			f.Items = it
		}
	}
	if v, has := m["properties"]; has {
		if t != TypeObject {
			bad(ptr(path, "properties"), "properties is only for \"type\": \"object\"")
		} else {
			props, is := compileSchema(v, ptr(path, "properties"))
			issues = append(issues, is...)
			if props == nil {
				props = map[string]*field{}
			}
			f.Properties = props
		}
	}
	if v, has := m["default"]; has {
		f.Default, f.HasDefault = v, true
		// element defaults are checked where the element set is known; the shape is checked here
		if t != TypeElement {
			for _, is := range f.check(v, ptr(path, "default"), nil) {
				is.code = CodeBadSchema
				is.msg = "default does not fit the field: " + is.msg
				issues = append(issues, is)
			}
		}
	}
	return f, issues
}

// elementLookup answers, during validation, whether an element exists and what it is.
type elementLookup interface {
	exists(fullName string) bool
	isA(fullName, typeOrMeta string) bool
}

// check validates v against f and returns every issue, located by JSON path.
func (f *field) check(v any, path string, els elementLookup) []issue {
	var out []issue
	add := func(code, format string, a ...any) {
		out = append(out, issue{path: path, code: code, msg: fmt.Sprintf(format, a...)})
	}
	want := func(what string) {
		add(CodeWrongType, "must be %s, not %s", what, describe(v))
	}
	switch f.Type {
	case TypeAny:
	case TypeString, TypeDuration, TypeCron, TypeTimezone, TypeElement:
		s, ok := v.(string)
		if !ok {
			want(map[string]string{TypeString: "a string", TypeDuration: "a duration string such as \"30s\" or \"1h30m\"",
				TypeCron: "a cron string such as \"0 3 * * *\"", TypeTimezone: "an IANA timezone name such as \"Asia/Shanghai\"",
				TypeElement: "the fullName of an element"}[f.Type])
			return out
		}
		switch f.Type {
		case TypeDuration:
			d, err := time.ParseDuration(s)
			switch {
			case err != nil:
				add(CodeBadDuration, "%q is not a duration: write it like \"30s\", \"5m\" or \"1h30m\"", s)
			case d < 0 && !f.Signed:
				add(CodeBadDuration, "%q is negative; this duration must be zero or more", s)
			}
		case TypeTimezone:
			if s == "" || strings.EqualFold(s, "local") {
				add(CodeBadTimezone, "%q is not a timezone: name one explicitly, such as \"UTC\" or \"Asia/Shanghai\"", s)
			} else if _, err := time.LoadLocation(s); err != nil {
				add(CodeBadTimezone, "%q is not an IANA timezone: use a name such as \"UTC\", \"Europe/Berlin\" or \"Asia/Shanghai\"", s)
			}
		case TypeElement:
			if els != nil {
				switch {
				case !els.exists(s):
					add(CodeUnknownElement, "element %q does not exist: create it or fix the name", s)
				case f.Meta != "" && !els.isA(s, f.Meta):
					add(CodeWrongElement, "%q is not a %s element; name one whose type chain includes %s", s, f.Meta, f.Meta)
				}
			}
		}
		if f.Pattern != nil && !f.Pattern.MatchString(s) {
			add(CodeBadValue, "%q does not have the required form (%s)", s, f.Pattern.String())
		}
	case TypeBoolean:
		if _, ok := v.(bool); !ok {
			want("true or false")
			return out
		}
	case TypeInteger, TypeNumber:
		n, ok := v.(float64)
		if _, big := v.(int64); big {
			// e.json keeps integers past 2^53 exact, as int64; a setting field (a count, a limit,
			// a size) never needs one.
			add(CodeWrongType, "%v is too large: whole numbers here are at most 2^53 (9007199254740992)", v)
			return out
		}
		if !ok {
			want(map[string]string{TypeInteger: "a whole number", TypeNumber: "a number"}[f.Type])
			return out
		}
		if f.Type == TypeInteger && (n != math.Trunc(n) || math.Abs(n) > 1<<53) {
			want("a whole number")
			return out
		}
		if f.Minimum != nil && n < *f.Minimum {
			add(CodeBadValue, "%v is below the minimum %v", n, *f.Minimum)
		}
		if f.Maximum != nil && n > *f.Maximum {
			add(CodeBadValue, "%v is above the maximum %v", n, *f.Maximum)
		}
	case TypeObject:
		m, ok := v.(map[string]any)
		if !ok {
			want("an object")
			return out
		}
		if f.Properties != nil {
			out = append(out, checkObject(f.Properties, m, path, els, true)...)
		}
	case TypeArray:
		a, ok := v.([]any)
		if !ok {
			want("an array")
			return out
		}
		if f.Items != nil {
			for i, x := range a {
				out = append(out, f.Items.check(x, ptrIndex(path, i), els)...)
			}
		}
	}
	if len(f.Enum) > 0 && !inEnum(f.Enum, v) {
		add(CodeBadEnum, "%s is not allowed here; use one of: %s", jsonText(v), enumText(f.Enum))
	}
	return out
}

// checkObject validates the keys of m against props: unknown keys (with a suggestion), values,
// and, when required is set, missing required keys.
func checkObject(props map[string]*field, m map[string]any, path string, els elementLookup, required bool) []issue {
	var out []issue
	for _, k := range sortedKeys(m) {
		f, ok := props[k]
		if !ok {
			out = append(out, issue{path: ptr(path, k), onKey: true, code: CodeUnknownField,
				msg: fmt.Sprintf("unknown field %q%s; allowed here: %s", k, suggest(k, keysOf(props)), strings.Join(sortedKeys(props), ", "))})
			continue
		}
		out = append(out, f.check(m[k], ptr(path, k), els)...)
	}
	if required {
		for _, k := range sortedKeys(props) {
			if _, has := m[k]; !has && props[k].Required {
				out = append(out, issue{path: path, code: CodeMissingField, msg: fmt.Sprintf("required field %q is missing: add it", k)})
			}
		}
	}
	return out
}

// withDefaults fills absent keys of objects (at any depth where properties are declared) with
// their schema defaults. It returns a fresh value; v is not modified.
func (f *field) withDefaults(v any) any {
	switch f.Type {
	case TypeObject:
		m, ok := v.(map[string]any)
		if !ok || f.Properties == nil {
			return v
		}
		return fillDefaults(f.Properties, m)
	case TypeArray:
		a, ok := v.([]any)
		if !ok || f.Items == nil {
			return v
		}
		out := make([]any, len(a))
		for i, x := range a {
			out[i] = f.Items.withDefaults(x)
		}
		return out
	}
	return v
}

func fillDefaults(props map[string]*field, m map[string]any) map[string]any {
	out := make(map[string]any, len(m)+len(props))
	for k, v := range m {
		if f, ok := props[k]; ok {
			out[k] = f.withDefaults(deepCopy(v))
		} else {
			out[k] = deepCopy(v)
		}
	}
	for k, f := range props {
		if _, has := out[k]; !has && f.HasDefault {
			out[k] = f.withDefaults(deepCopy(f.Default))
		}
	}
	return out
}

func inEnum(enum []any, v any) bool {
	for _, e := range enum {
		if jsonText(e) == jsonText(v) {
			return true
		}
	}
	return false
}

func enumText(enum []any) string {
	parts := make([]string, len(enum))
	for i, e := range enum {
		parts[i] = jsonText(e)
	}
	return strings.Join(parts, ", ")
}

func jsonText(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("%q", v)
	case nil:
		return "null"
	}
	return fmt.Sprint(v)
}

// describe names the JSON type of v for messages.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("the string %q", v)
	case bool:
		return fmt.Sprintf("%v", v)
	case float64:
		return fmt.Sprintf("the number %v", v)
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func keysOf[V any](m map[string]V) []string { return sortedKeys(m) }

// suggest returns ` (did you mean "x"?)` for the closest known name within a small edit
// distance, or "".
func suggest(name string, known []string) string {
	best, bestD := "", 3
	if len(name) <= 3 {
		bestD = 2
	}
	for _, k := range known {
		if d := editDistance(strings.ToLower(name), strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// deepCopy copies a decoded JSON value so definitions never share maps or slices with the
// e.json they came from.
func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, x := range v {
			m[k] = deepCopy(x)
		}
		return m
	case []any:
		a := make([]any, len(v))
		for i, x := range v {
			a[i] = deepCopy(x)
		}
		return a
	}
	return v
}

// isWebURL reports whether s is an absolute http(s) URL with a host.
func isWebURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
