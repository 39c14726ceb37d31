package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"
)

// jsonDoc is a parsed JSON document that remembers where every value and key starts, so a
// problem with any field can point at its line and column in the file the user wrote.
type jsonDoc struct {
	src   string
	value any
	vals  map[string]int // path → byte offset where the value starts
	keys  map[string]int // path → byte offset where its key starts
	lines []int          // byte offset of each line start
}

// jsonIssue is a problem found while parsing, with the byte offset it points at.
type jsonIssue struct {
	offset int
	code   string
	msg    string
}

// ptr joins a path and one step the way JSON Pointer does, so keys holding "/" stay unambiguous.
func ptr(path, step string) string {
	step = strings.ReplaceAll(strings.ReplaceAll(step, "~", "~0"), "/", "~1")
	if path == "" {
		return step
	}
	return path + "/" + step
}

func ptrIndex(path string, i int) string { return ptr(path, fmt.Sprint(i)) }

// parseJSON parses src. Syntax errors come back as a single issue with the position
// encoding/json reports (the decoder's own offsets are unreliable on errors, so a document is
// first checked with Unmarshal and walked token by token only once it is known to be valid).
// Duplicate keys are issues too: the later one silently winning is a classic source of bugs.
func parseJSON(src string) (*jsonDoc, []jsonIssue) {
	// A byte-order mark (some Windows editors write one) is not JSON, and editors do not count
	// it as a column.
	src = strings.TrimPrefix(src, "\uFEFF")
	d := &jsonDoc{src: src, lines: lineStarts(src)}
	var probe any
	if err := json.Unmarshal([]byte(src), &probe); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			off := int(se.Offset) - 1
			msg := se.Error()
			if strings.Contains(msg, "unexpected end") {
				off = len(strings.TrimRight(src, " \t\r\n"))
				msg = "unexpected end of JSON: a closing } or ] or a value is missing"
			}
			return d, []jsonIssue{{offset: clamp(off, 0, len(src)), code: CodeBadJSON, msg: "invalid JSON: " + msg}}
		}
		return d, []jsonIssue{{offset: 0, code: CodeBadJSON, msg: "invalid JSON: " + err.Error()}}
	}
	w := &jsonWalker{doc: d, dec: json.NewDecoder(strings.NewReader(src))}
	w.dec.UseNumber()
	d.vals = map[string]int{}
	d.keys = map[string]int{}
	v, err := w.value("")
	if err != nil { // cannot happen on a document Unmarshal accepted; keep the probe
		return d, []jsonIssue{{offset: 0, code: CodeBadJSON, msg: "invalid JSON: " + err.Error()}}
	}
	d.value = v
	return d, w.issues
}

type jsonWalker struct {
	doc    *jsonDoc
	dec    *json.Decoder
	issues []jsonIssue
}

// next returns the offset where the next token starts: past whitespace and the ':' or ','
// that the decoder has not consumed yet.
func (w *jsonWalker) next() int {
	s := w.doc.src
	i := int(w.dec.InputOffset())
	for i < len(s) {
		switch s[i] {
		case ' ', '\t', '\r', '\n', ':', ',':
			i++
			continue
		}
		break
	}
	return i
}

func (w *jsonWalker) value(path string) (any, error) {
	w.doc.vals[path] = w.next()
	tok, err := w.dec.Token()
	if err != nil {
		return nil, err
	}
	if n, ok := tok.(json.Number); ok {
		return number(n), nil
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return tok, nil
	}
	switch delim {
	case '{':
		m := map[string]any{}
		for w.dec.More() {
			kstart := w.next()
			ktok, err := w.dec.Token()
			if err != nil {
				return nil, err
			}
			key, _ := ktok.(string)
			kp := ptr(path, key)
			if _, dup := m[key]; dup {
				w.issues = append(w.issues, jsonIssue{offset: kstart, code: CodeDuplicateKey,
					msg: fmt.Sprintf("key %q appears twice in this object; keep one", key)})
			}
			w.doc.keys[kp] = kstart
			v, err := w.value(kp)
			if err != nil {
				return nil, err
			}
			m[key] = v
		}
		_, err := w.dec.Token() // '}'
		return m, err
	case '[':
		a := []any{}
		for i := 0; w.dec.More(); i++ {
			v, err := w.value(ptrIndex(path, i))
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := w.dec.Token() // ']'
		return a, err
	}
	return nil, fmt.Errorf("unexpected delimiter %v", delim)
}

// valuePos is the line and column of the value at path, or of the nearest enclosing value that
// has one (a missing field points at the object that should hold it).
func (d *jsonDoc) valuePos(path string) (int, int) {
	if d == nil || d.vals == nil {
		return 0, 0
	}
	for {
		if off, ok := d.vals[path]; ok {
			return d.lineCol(off)
		}
		if path == "" {
			return 0, 0
		}
		i := strings.LastIndexByte(path, '/')
		if i < 0 {
			path = ""
		} else {
			path = path[:i]
		}
	}
}

// keyPos is the line and column of the key of path (falling back to its value).
func (d *jsonDoc) keyPos(path string) (int, int) {
	if d != nil && d.keys != nil {
		if off, ok := d.keys[path]; ok {
			return d.lineCol(off)
		}
	}
	return d.valuePos(path)
}

func (d *jsonDoc) lineCol(off int) (int, int) { return lineColOf(d.src, d.lines, off) }

// lineStarts lists the byte offset of each line's first byte.
func lineStarts(s string) []int {
	ls := []int{0}
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			ls = append(ls, i+1)
		}
	}
	return ls
}

// lineColOf turns a byte offset into a 1-based line and a 1-based column counted in characters,
// which is what editors show.
func lineColOf(s string, lines []int, off int) (int, int) {
	off = clamp(off, 0, len(s))
	l := sort.Search(len(lines), func(i int) bool { return lines[i] > off }) - 1
	if l < 0 {
		l = 0
	}
	return l + 1, utf8.RuneCountInString(s[lines[l]:off]) + 1
}

func clamp(v, lo, hi int) int {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

// number is a definition's number as float64, what every reader of definitions (schema checks,
// retry policies, limits) takes — except an integer a float64 cannot hold (past 2^53), which is
// an int64, so an id in a template's argDict reaches the task function exactly.
func number(n json.Number) any {
	f, err := n.Float64()
	if i, ierr := n.Int64(); ierr == nil && (err != nil || float64(i) != f || int64(f) != i) {
		return i
	}
	return f
}
