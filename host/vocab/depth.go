package vocab

// Nesting depth of values: a scalar has depth 0, [] and {} have 1, [[1]] has 2. Every layer that
// takes a value from outside (an HTTP body, event kwargs, call arguments) refuses one deeper than
// its cap before it stores, copies or encodes it: the cost of encoding a value can grow with its
// depth times its size (issue 12: 17 KiB nested 9,000 deep cost the host 914 MiB), and walking
// an unbounded depth is how a Go stack runs out.

// DeeperThan reports whether v, a plain value ([]any and map[string]any containers), nests
// deeper than max. It stops at the first path that passes max, so it costs O(max) stack and
// time proportional to what it looks at, whatever v holds.
func DeeperThan(v any, max int) bool {
	switch x := v.(type) {
	case []any:
		if max <= 0 {
			return true
		}
		for _, e := range x {
			if DeeperThan(e, max-1) {
				return true
			}
		}
	case map[string]any:
		if max <= 0 {
			return true
		}
		for _, e := range x {
			if DeeperThan(e, max-1) {
				return true
			}
		}
	}
	return false
}

// JSONDeeperThan reports whether the JSON text data nests arrays and objects deeper than max.
// It reads the bytes once, counting brackets outside strings, in O(1) memory, so a body can be
// refused before it is decoded; it does not validate (the decoder does).
func JSONDeeperThan(data []byte, max int) bool {
	depth, inString, escaped := 0, false, false
	for _, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			if depth++; depth > max {
				return true
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return false
}
