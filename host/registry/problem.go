package registry

import (
	"fmt"
	"sort"
	"strings"

	"github.com/trellis-run/trellis/host/vocab"
)

// Problem codes. They are stable: the CLI, the editor and tests match on them.
const (
	CodeNoApp           = "no_app"           // the app directory or its app.json is missing
	CodeIO              = "io_error"         // a file could not be read
	CodeBadJSON         = "bad_json"         // e.json, app.json or another .json file is not valid JSON
	CodeDuplicateKey    = "duplicate_key"    // the same key twice in one JSON object
	CodeUnknownField    = "unknown_field"    // a key no schema on the element's chain declares
	CodeWrongType       = "wrong_type"       // a value of the wrong JSON type
	CodeBadEnum         = "bad_enum"         // a value outside the field's enum
	CodeBadValue        = "bad_value"        // a value that breaks a pattern or minimum
	CodeMissingField    = "missing_field"    // a required field is absent
	CodeBadDuration     = "bad_duration"     // not a Go duration ("30s", "1h30m"), or negative where not allowed
	CodeBadCron         = "bad_cron"         // not a 5- or 6-field cron expression
	CodeBadTimezone     = "bad_timezone"     // not an IANA timezone
	CodeBadSchema       = "bad_schema"       // a Meta's or Type's schema is itself malformed
	CodeUnknownType     = "unknown_type"     // `type` names no element
	CodeTypeCycle       = "type_cycle"       // `type` links loop
	CodeBadType         = "bad_type"         // `type` names an instance, or a layer-only key is misplaced
	CodeBadExtends      = "bad_extends"      // an extends entry is not a relative path to an app
	CodeExtendsCycle    = "extends_cycle"    // extends links loop
	CodeJSSyntax        = "js_syntax"        // a JavaScript file does not compile, or is past jscompile's limits
	CodeMissingFunction = "missing_function" // a handler, funcName or listed function is not exported
	CodeUnknownElement  = "unknown_element"  // a reference to an element that does not exist
	CodeWrongElement    = "wrong_element"    // a reference to an element of the wrong kind
	CodeBadField        = "bad_field"        // a reference to a model field that is absent or of the wrong type
	CodeBadRequire      = "bad_require"      // require() of something other than the element's own files or commons/
	CodeBadPath         = "bad_path"         // an entry/loader path that leaves the element, or an unusable directory name
	CodeOutsideApp      = "outside_app"      // a symlink that leads out of the app directory
	CodeFileTooLarge    = "file_too_large"   // a file over MaxFileSize
	CodeBadConfig       = "bad_config"       // fields that are valid alone but not together
	CodeInvalid         = "invalid"          // a Validator's problem that gave no code
)

// Problem is one thing wrong with an app. File is relative to the app root ("events/X/e.json");
// files of an extended app are relative to it too ("../base/services/Y/index.js") and built-in
// files start with "builtin:". Line and Column are 1-based (Column counts characters) and 0 when
// the problem has no position.
type Problem struct {
	// Element is the fullName of the element it belongs to ("" for app.json and commons/).
	Element string `json:"element,omitempty"`
	// File, Line and Column say where to look (see above).
	File   string `json:"file,omitempty"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
	// Code is one of the Code constants, for programs; Message is for people and says what to do.
	Code    string `json:"code"`
	Message string `json:"message"`
	// Severity is "" for a problem (the app does not load) or SeverityWarning for something
	// probably wrong that does not stop it: `trellis check` prints warnings and still exits 0.
	Severity string `json:"severity,omitempty"`
}

// SeverityWarning marks a Problem that is only a warning. Validators return warnings beside
// problems; the registry keeps them apart (Snapshot.Warnings, CheckAll) and never fails a load,
// a reload or a save for them.
const SeverityWarning = "warning"

// String renders the problem the way compilers do, so editors and terminals can jump to it:
// "file:line:col: message", or "file: message" without a position.
func (p Problem) String() string {
	where := p.File
	switch {
	case where == "":
		where = p.Element
	case p.Line > 0:
		where = fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
	}
	if where == "" {
		return p.Message
	}
	return where + ": " + p.Message
}

// ValidationError is the error Load returns when the app has problems: all of them, so a user
// fixes everything in one pass. Nothing of the app is loaded.
type ValidationError struct {
	// Problems is every problem found, sorted by file and position.
	Problems []Problem
}

// Error lists every problem, one per line.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// ErrorCode makes a ValidationError a coded error: invalid_element (422 over HTTP).
func (e *ValidationError) ErrorCode() string { return vocab.CodeInvalidElement }

// ErrorDetails hands every problem, with its position, to the HTTP error body.
func (e *ValidationError) ErrorDetails() any { return map[string]any{"problems": e.Problems} }

// Is makes errors.Is(err, ErrInvalid) true for every ValidationError.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// sortProblems orders problems by file and position so output is stable and reads top-down.
func sortProblems(ps []Problem) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Column != b.Column {
			return a.Column < b.Column
		}
		if a.Element != b.Element {
			return a.Element < b.Element
		}
		return a.Message < b.Message
	})
}

// dedupeProblems drops exact repeats (a problem found both on a candidate and on the last good
// version it fell back to).
func dedupeProblems(ps []Problem) []Problem {
	seen := make(map[Problem]bool, len(ps))
	out := ps[:0]
	for _, p := range ps {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}
