package vocab

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// DecodeJSON's fast path (whole numbers of up to 15 digits through json.Unmarshal) answers what
// the exact path does, on every input.
func FuzzDecodeJSONMatchesTheExactPath(f *testing.F) {
	for _, seed := range []string{
		`{"a": 1, "b": true, "c": false, "d": null, "e": "x"}`, `[-1, -0, 0, 123456789012345]`, `1234567890123456`,
		`[1.0, 1e3, 1E-2, -2.5e+3]`, `{"s": "1.5e3 \"quoted\" \\ 99999999999999999"}`, `{"id": 9007199254740993}`,
		`{"k": [true, 12, "a.b", {"n": -7}]}`, `"text"`, `-`, `01`, `{"a": 1} 2`, ``, `[1, 2,]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want, werr := decodeExact(data)
		got, gerr := DecodeJSON(data)
		require.Equal(t, werr == nil, gerr == nil, "error mismatch for %q: %v vs %v", data, werr, gerr)
		if werr == nil {
			require.Equal(t, want, got, "%q", data)
		}
	})
}
