package registry

// goja's parser recurses through its whole precedence chain (about 3 KB of stack) for every
// nested bracket, assignment, conditional or arrow; a file of a few hundred thousand nested
// parentheses, well under MaxFileSize, overflows the 1 GB goroutine stack, which is fatal to
// the whole process and cannot be recovered. So no JavaScript reaches the parser (here, or in
// the sandbox, which runs only elements that passed validation) before a linear scan bounds
// how deep it can make the parser recurse.

// MaxNesting is the deepest code the registry accepts: brackets plus chained assignments,
// conditionals and arrows. Real code stays far below it.
const MaxNesting = 1000

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
}

// parenAfterWord lists the keywords whose "(...)" is followed by a statement, where "/" starts
// a regular expression: if (x) /re/.test(y).
var parenAfterWord = map[string]bool{"if": true, "while": true, "for": true, "with": true}

type nestLevel struct {
	chain    int  // recursion-inducing operators since the last ; or , at this level
	template bool // opened by "${" inside a template literal
	regexEnd bool // a ")" closing it may be followed by a regular expression
}

// nestingTooDeep returns the 0-based byte offset where src first exceeds the limits, or -1.
func nestingTooDeep(src string) int {
	raw := 0
	for i := 0; i < len(src); i++ {
		switch src[i] {
		case '(', '[', '{':
			if raw++; raw > maxRawBrackets {
				return i
			}
		case ')', ']', '}':
			raw = max(raw-1, 0)
		}
	}

	levels := []nestLevel{{}}
	sum := 0        // sum of chains
	regexOK := true // whether "/" here would start a regular expression
	lastWord := ""  // the word just before, for if/while/for/with
	push := func(l nestLevel) { levels = append(levels, l) }
	top := func() *nestLevel { return &levels[len(levels)-1] }
	for i := 0; i < len(src); {
		c := src[i]
		word := ""
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
			regexOK = regexAfterWord[word]
			i = j
		case c == '"' || c == '\'':
			i = bounded(i, skipQuoted(src, i+1, c), maxSkip)
			regexOK = false
		case c == '`':
			end := skipTemplate(src, i+1)
			if end < 0 || end-i > maxTemplateSkip {
				i++ // scan it as code
				break
			}
			i = end
			regexOK = false
			if i < len(src) && src[i] == '{' { // "${": an expression level inside the template
				push(nestLevel{template: true})
				i++
				regexOK = true
			}
		case c == '/' && regexOK:
			i = bounded(i, skipRegexp(src, i+1), maxSkip)
			regexOK = false
		case c == '(' || c == '[' || c == '{':
			push(nestLevel{regexEnd: c == '(' && parenAfterWord[lastWord]})
			i++
			regexOK = true
		case c == ')' || c == ']' || c == '}':
			closed := *top()
			if len(levels) > 1 {
				sum -= closed.chain
				levels = levels[:len(levels)-1]
			}
			i++
			regexOK = c == '}' || closed.regexEnd // after a block, or after if (...)
			if closed.template && c == '}' {      // back in the template's text
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
			i++
			regexOK = true
		case c == '?':
			if i+1 < len(src) && (src[i+1] == '.' || src[i+1] == '?') {
				i += 2
			} else {
				top().chain++
				sum++
				i++
			}
			regexOK = true
		case c == '=':
			switch {
			case i+1 < len(src) && src[i+1] == '=': // == and ===
				for i < len(src) && src[i] == '=' {
					i++
				}
			case i+1 < len(src) && src[i+1] == '>': // arrow
				top().chain++
				sum++
				i += 2
			default: // assignment, compound or not
				top().chain++
				sum++
				i++
			}
			regexOK = true
		case c == '!' || c == '<' || c == '>':
			i++
			for i < len(src) && (src[i] == '=' || src[i] == '<' || src[i] == '>') {
				i++ // != !== <= >= << >> >>> and their assignments: not chains
			}
			regexOK = true
		default:
			i++
			regexOK = true
		}
		lastWord = word
		if len(levels)-1+sum > MaxNesting {
			return min(i, len(src)-1)
		}
	}
	return -1
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
