package jscompile

import "strings"

// goja's parser recurses through its whole precedence chain (about 2 KB of stack) for every
// nested bracket, and through smaller frames for every assignment, conditional, arrow, prefix
// operator, `new` or label of a chain (labels also cost time quadratic in how many nest); a file of a few hundred thousand nested parentheses, well under
// MaxSourceBytes, overflows the goroutine stack, which is fatal to the whole process and cannot
// be recovered. So no JavaScript reaches the parser before this linear scan bounds how deep it
// can make the parser recurse. (Chains the parser reads in a loop, such as a + b + c or
// a.b.c(), and statements, which cost a few hundred bytes a level, are left to the tree check
// after parsing: within MaxSourceBytes they cannot exhaust the stack.)

// The scan must skip strings, regular expressions and templates, and no lexer can tell a
// regular expression from a division without parsing. Where it guesses wrong it may skip real
// code, so a skip may hide only a little: a string or regular expression must close on its line
// within maxSkip bytes, a template within maxTemplateSkip, or its text is scanned as code (which
// can only overcount); and bracket depth counted without skipping anything is capped at
// maxRawBrackets. What could still hide costs the parser at most a few hundred MB of stack,
// transiently, not the process.
const (
	maxSkip         = 4 << 10
	maxTemplateSkip = 16 << 10
	maxRawBrackets  = 50 * MaxNesting
)

// regexAfterWord lists the keywords after which "/" starts a regular expression.
var regexAfterWord = map[string]bool{
	"return": true, "typeof": true, "instanceof": true, "in": true, "of": true, "new": true, "delete": true,
	"void": true, "throw": true, "case": true, "do": true, "else": true, "yield": true, "await": true,
	"extends": true,
}

// chainWords are the keywords that make the parser recurse once more for what follows them:
// prefix operators, new, yield, and the heritage of a class expression.
var chainWords = map[string]bool{
	"typeof": true, "void": true, "delete": true, "await": true, "new": true, "yield": true, "extends": true,
}

// parenAfterWord lists the keywords whose "(...)" is followed by a statement, where "/" starts
// a regular expression: if (x) /re/.test(y).
var parenAfterWord = map[string]bool{"if": true, "while": true, "for": true, "with": true}

// stmtParenWord lists the keywords whose "(...)" is followed by a statement or a block that is
// not a function body.
var stmtParenWord = map[string]bool{"if": true, "while": true, "for": true, "with": true, "switch": true, "catch": true}

// stmtAfterWord lists the keywords a statement follows.
var stmtAfterWord = map[string]bool{"else": true, "do": true, "try": true, "finally": true}

type nestLevel struct {
	chain    int  // recursion-inducing operators since the last ; or , at this level
	pending  int  // conditionals at this level whose ":" has not come yet
	template bool // opened by "${" inside a template literal
	regexEnd bool // a ")" closing it may be followed by a regular expression
	stmt     bool // "(" of if/while/for/with/switch/catch: what follows its ")" is a statement
	block    bool // a block (or a function body, or the top level): statements, so labels
	fresh    bool // a function body: labels outside it are not visible in it
	inCase   bool // after case or default, before its ":"
	labels   []string
}

// labelScopes tracks the labels in force, per function body. goja's parser reports a label
// nested inside one of the same name once per enclosing one, and keeps every error: 1 MB of
// such nesting made it hold 24 GB of errors. A label that repeats one in force is refused at
// once instead. Where a labelled statement ends is guessed (at ";", or at the "}" of its block
// unless else, catch, finally or while follow): a guess too long can only refuse a label
// repeated right after a statement that ended without a semicolon.
type labelScopes []map[string]int

func (ls *labelScopes) declare(l *nestLevel, name string) bool {
	sc := (*ls)[len(*ls)-1]
	if sc[name] > 0 {
		return false
	}
	sc[name]++
	l.labels = append(l.labels, name)
	return true
}

// end ends the labels declared at level l, which is in the innermost scope.
func (ls *labelScopes) end(l *nestLevel) {
	sc := (*ls)[len(*ls)-1]
	for _, name := range l.labels {
		sc[name]--
	}
	l.labels = l.labels[:0]
}

// nextWord is the word that starts at or after i, past spaces and comments.
func nextWord(src string, i int) string {
	for i < len(src) {
		switch {
		case src[i] == ' ' || src[i] == '\t' || src[i] == '\r' || src[i] == '\n':
			i++
		case strings.HasPrefix(src[i:], "//"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return ""
			}
			i += end + 4
		default:
			j := i
			for j < len(src) && isWordByte(src[j]) {
				j++
			}
			return src[i:j]
		}
	}
	return ""
}

// scanNesting returns the 0-based byte offset where src first exceeds the limits, or -1; and,
// when it stopped at a repeated label, the label.
func scanNesting(src string) (int, string) {
	if off, label := scanStructure(src); off >= 0 {
		return off, label
	}
	raw := 0
	for i := 0; i < len(src); i++ {
		switch src[i] {
		case '(', '[', '{':
			if raw++; raw > maxRawBrackets {
				return i, ""
			}
		case ')', ']', '}':
			raw = max(raw-1, 0)
		}
	}
	return -1, ""
}

// scanStructure is the scan that skips strings, regular expressions and templates (see above).
func scanStructure(src string) (int, string) {
	levels := []nestLevel{{block: true}}
	scopes := labelScopes{{}}
	sum := 0                // sum of chains
	regexOK := true         // whether "/" here would start a regular expression: an operand is expected
	stmt := true            // whether a statement may start here
	lastWord := ""          // the word just before, for if/while/for/with
	wordAtStmt := false     // whether lastWord started a statement (a label, if ":" follows)
	afterBody := false      // the token before was ")" of a function's parameters, "=>" or static
	afterStmtParen := false // the token before was ")" of if/while/for/with/switch/catch
	push := func(l nestLevel) {
		if l.fresh {
			scopes = append(scopes, map[string]int{})
		}
		levels = append(levels, l)
	}
	top := func() *nestLevel { return &levels[len(levels)-1] }
	pop := func() nestLevel {
		l := top()
		scopes.end(l)
		if l.fresh {
			scopes = scopes[:len(scopes)-1]
		}
		closed := *l
		levels = levels[:len(levels)-1]
		return closed
	}
	chain := func() {
		top().chain++
		sum++
	}
	for i := 0; i < len(src); {
		c := src[i]
		word := ""
		startsStmt := stmt
		body, stmtParen := afterBody, afterStmtParen
		afterBody, afterStmtParen = false, false
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
			continue
		case c == '/' && i+1 < len(src) && src[i+1] == '/':
			for i < len(src) && src[i] != '\n' {
				i++
			}
			continue
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			i += 2
			for i+1 < len(src) && !(src[i] == '*' && src[i+1] == '/') {
				i++
			}
			i += 2
			continue
		case isWordByte(c):
			j := i
			for j < len(src) && isWordByte(src[j]) {
				j++
			}
			word = src[i:j]
			if chainWords[word] {
				chain()
			}
			if word == "case" || word == "default" {
				top().inCase = true
			}
			regexOK = regexAfterWord[word]
			stmt = stmtAfterWord[word]
			afterBody = word == "static" // a class's static block
			i = j
		case c == '"' || c == '\'':
			i = bounded(i, skipQuoted(src, i+1, c), maxSkip)
			regexOK, stmt = false, false
		case c == '`':
			end := skipTemplate(src, i+1)
			if end < 0 || end-i > maxTemplateSkip {
				i++ // scan it as code
				break
			}
			i = end
			regexOK, stmt = false, false
			if i < len(src) && src[i] == '{' { // "${": an expression level inside the template
				push(nestLevel{template: true})
				i++
				regexOK = true
			}
		case c == '/' && regexOK:
			i = bounded(i, skipRegexp(src, i+1), maxSkip)
			regexOK, stmt = false, false
		case c == '{':
			// A "{" where a statement may start, or after the ")" of a statement's or a
			// function's head, or after "=>", is a block; elsewhere it is an object literal.
			block := startsStmt || body || stmtParen
			push(nestLevel{block: block, fresh: body})
			i++
			regexOK, stmt = true, block
		case c == '(' || c == '[':
			push(nestLevel{regexEnd: c == '(' && parenAfterWord[lastWord], stmt: c == '(' && stmtParenWord[lastWord]})
			i++
			regexOK, stmt = true, false
		case c == ')' || c == ']' || c == '}':
			var closed nestLevel
			if len(levels) > 1 {
				sum -= top().chain
				closed = pop()
			}
			i++
			regexOK = c == '}' || closed.regexEnd // after a block, or after if (...)
			stmt = c == '}' && closed.block
			afterStmtParen = c == ')' && closed.stmt
			afterBody = c == ')' && !closed.stmt
			if stmt && !closed.fresh {
				// The block ended a labelled statement, unless the statement goes on.
				if w := nextWord(src, i); w != "else" && w != "catch" && w != "finally" && w != "while" {
					scopes.end(top())
				}
			}
			if closed.template && c == '}' { // back in the template's text
				end := skipTemplate(src, i)
				if end < 0 || end-i > maxTemplateSkip {
					break
				}
				i = end
				regexOK = false
				if i < len(src) && src[i] == '{' {
					push(nestLevel{template: true})
					i++
					regexOK = true
				}
			}
		case c == ';' || c == ',':
			sum -= top().chain
			top().chain = 0
			if c == ';' {
				top().pending = 0
				scopes.end(top())
			}
			i++
			regexOK, stmt = true, c == ';'
		case c == '?':
			if i+1 < len(src) && (src[i+1] == '.' || src[i+1] == '?') {
				i += 2
			} else {
				chain()
				top().pending++
				i++
			}
			regexOK = true
		case c == ':':
			// A conditional's ":" was counted with its "?". After a word, ":" ends a label (each
			// nested label is a level of the parser, which also checks every label against the
			// ones around it: time quadratic in how many nest), or an object key or a case,
			// which the count may include: a comma or semicolon soon ends them.
			l := top()
			stmt = false
			switch {
			case l.pending > 0:
				l.pending--
			case l.inCase:
				l.inCase, stmt = false, true
			case lastWord != "":
				chain()
				if wordAtStmt && l.block {
					if !scopes.declare(l, lastWord) {
						return i - len(lastWord), lastWord
					}
					stmt = true
				}
			}
			i++
			regexOK = true
		case c == '=':
			switch {
			case i+1 < len(src) && src[i+1] == '=': // == and ===
				for i < len(src) && src[i] == '=' {
					i++
				}
			case i+1 < len(src) && src[i+1] == '>': // arrow
				chain()
				i += 2
				afterBody = true
			default: // assignment, compound or not
				chain()
				i++
			}
			regexOK = true
		case c == '!':
			i++
			if i < len(src) && src[i] == '=' { // != and !==
				for i < len(src) && src[i] == '=' {
					i++
				}
			} else {
				chain() // logical not
			}
			regexOK = true
		case c == '~':
			chain()
			i++
			regexOK = true
		case c == '+' || c == '-':
			// Where an operand is expected, + - ++ -- are prefix operators, each one more level
			// of the parser; elsewhere they are binary or postfix, which it reads in a loop.
			prefix := regexOK
			if prefix {
				chain()
			}
			if i+1 < len(src) && src[i+1] == c {
				i += 2
				regexOK = prefix // after a postfix ++ an operator follows, not an operand
				break
			}
			i++
			regexOK = true
		case c == '*' && i+1 < len(src) && src[i+1] == '*': // ** is right-associative: a level each
			chain()
			i += 2
			regexOK = true
		case c == '<' || c == '>':
			i++
			for i < len(src) && (src[i] == '=' || src[i] == '<' || src[i] == '>') {
				i++ // <= >= << >> >>> and their assignments: not chains
			}
			regexOK = true
		default:
			i++
			regexOK = true
		}
		if c != ' ' {
			// Every token but "{" "(" "[" ";" ":" and words says no statement starts after it.
			switch {
			case word != "", c == '{', c == '(', c == '[', c == ';', c == ':', c == ')', c == ']', c == '}', c == ',':
			default:
				stmt = false
			}
		}
		wordAtStmt = word != "" && startsStmt
		lastWord = word
		if len(levels)-1+sum > MaxNesting {
			return min(i, len(src)-1), ""
		}
	}
	return -1, ""
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c == '.' || c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// bounded returns end when the literal from start closed properly within limit, else the
// offset just past its opening character, so the rest is scanned as code.
func bounded(start, end, limit int) int {
	if end < 0 || end-start > limit {
		return start + 1
	}
	return end
}

// skipQuoted returns the offset after the closing quote, or -1 when the line (or the file)
// ends first.
func skipQuoted(src string, i int, quote byte) int {
	for i < len(src) {
		switch src[i] {
		case '\\':
			if i+1 < len(src) && src[i+1] == '\n' {
				return -1
			}
			i += 2
			continue
		case quote:
			return i + 1
		case '\n':
			return -1
		}
		i++
	}
	return -1
}

// skipTemplate skips template text up to the closing backtick (returning the offset after it)
// or up to "${" (returning the offset of its "{"), or returns -1 at the end of the file.
func skipTemplate(src string, i int) int {
	for i < len(src) {
		switch src[i] {
		case '\\':
			i += 2
			continue
		case '`':
			return i + 1
		case '$':
			if i+1 < len(src) && src[i+1] == '{' {
				return i + 1
			}
		}
		i++
	}
	return -1
}

// skipRegexp skips a regular expression literal's body, classes and flags, or returns -1 when
// the line ends first.
func skipRegexp(src string, i int) int {
	inClass := false
	for i < len(src) {
		switch src[i] {
		case '\\':
			i += 2
			continue
		case '[':
			inClass = true
		case ']':
			inClass = false
		case '/':
			if !inClass {
				i++
				for i < len(src) && src[i] >= 'a' && src[i] <= 'z' {
					i++
				}
				return i
			}
		case '\n':
			return -1
		}
		i++
	}
	return -1
}
