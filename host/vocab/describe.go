package vocab

import (
	"fmt"
	"time"
)

// Describe names the kind of a value of the sandbox's value model the way error messages
// speak to a JS author ("an object", "a number", "null"), so every layer that refuses an
// argument says what it got in the same words.
func Describe(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64, float32, int, int64, int32, uint64:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	case time.Time:
		return "a Date"
	default:
		return fmt.Sprintf("%T", v)
	}
}
