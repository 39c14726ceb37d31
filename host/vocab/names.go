package vocab

// MaxFullName bounds an element's fullName.
const MaxFullName = 512

// IsFullName reports whether s can be an element's fullName: dot-separated names, each a letter,
// _ or $ followed by letters, digits, _, $ or -, at most MaxFullName bytes in all. Such a name
// can never smuggle a path ("../", "/", "%2e%2e"), a NUL or a newline into anything downstream,
// so every surface that takes a fullName from outside (HTTP paths, a sender) checks it here.
func IsFullName(s string) bool {
	if s == "" || len(s) > MaxFullName {
		return false
	}
	start := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if start {
				return false
			}
			start = true
			continue
		case c == '_' || c == '$' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z':
		case c == '-' || c >= '0' && c <= '9':
			if start {
				return false
			}
		default:
			return false
		}
		start = false
	}
	return !start
}
