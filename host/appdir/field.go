package appdir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// SetField sets one top-level field of an app element's e.json (the console's enable and
// disable switches) and saves the element as Save does: validated with the whole app, written in
// one step. The rest of the e.json text stays as written — its order, its spacing, its comments
// of "_" fields and its integers past 2^53 — because only the field's value is replaced, or the
// field appended after the last one. An element the app directory does not hold is ErrNoElement.
func (a Dir) SetField(fullName, key string, value any) (Saved, error) {
	dir, err := a.elementDir(fullName)
	if err != nil {
		return Saved{}, err
	}
	cur, exists, err := readElement(dir)
	if err != nil {
		return Saved{}, fmt.Errorf("host: read %s: %w", fullName, err)
	}
	if !exists {
		return Saved{}, fmt.Errorf("%w: no element %q in the app directory", ErrNoElement, fullName)
	}
	files := make(map[string]string, len(cur))
	for name, text := range cur {
		if name == "e.json" {
			continue
		}
		if strings.HasPrefix(text, "symlink:") {
			return Saved{}, fmt.Errorf("%w: %s holds the symlink %s; change %q in the element editor instead", ErrBadDraft, fullName, name, key)
		}
		files[name] = text
	}
	def, err := setJSONField(cur["e.json"], key, value)
	if err != nil {
		return Saved{}, fmt.Errorf("%w: %s/e.json: %v", ErrBadDraft, fullName, err)
	}
	return a.Save(fullName, Draft{Definition: def, Files: files}, VersionOf(cur), false)
}

// setJSONField returns text, a JSON object, with its top-level field key set to value: every
// occurrence's value replaced in place, or, when there is none, the field added after the last
// one on a line of its own, indented as the fields before it.
func setJSONField(text, key string, value any) (string, error) {
	val, err := json.Marshal(value)
	if err != nil {
		return "", err
	}
	dec := json.NewDecoder(strings.NewReader(text))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", errors.New("not a JSON object")
	}
	type span struct{ start, end int }
	var found []span
	lastEnd, lastKeyStart := -1, -1
	for dec.More() {
		keyTok, err := dec.Token()
		if err != nil {
			return "", err
		}
		keyEnd := int(dec.InputOffset())
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return "", err
		}
		end := int(dec.InputOffset())
		start := end - len(raw)
		k, _ := keyTok.(string)
		keyLen := len(mustMarshal(k))
		lastKeyStart, lastEnd = keyEnd-keyLen, end
		if k == key {
			found = append(found, span{start, end})
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return "", errors.New("not a JSON object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return "", errors.New("text after the JSON object")
	}
	if len(found) > 0 {
		var b strings.Builder
		at := 0
		for _, s := range found {
			b.WriteString(text[at:s.start])
			b.Write(val)
			at = s.end
		}
		b.WriteString(text[at:])
		return b.String(), nil
	}
	field := string(mustMarshal(key)) + ": " + string(val)
	if lastEnd < 0 { // {} or { }
		open := strings.IndexByte(text, '{')
		return text[:open+1] + field + text[open+1:], nil
	}
	// The indentation of the last field's line, when the field starts its line.
	lineStart := strings.LastIndexByte(text[:lastKeyStart], '\n') + 1
	indent := text[lineStart:lastKeyStart]
	sep := ", "
	if lineStart > 0 && strings.TrimLeft(indent, " \t") == "" {
		sep = ",\n" + indent
	}
	return text[:lastEnd] + sep + field + text[lastEnd:], nil
}

func mustMarshal(s string) []byte {
	b, _ := json.Marshal(s)
	return bytes.TrimSpace(b)
}
