package appdir

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// setJSONField replaces a field's value where it stands, or appends the field as the fields
// before it are laid out; the rest of the text is kept byte for byte.
func TestSetJSONField(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		value          any
	}{
		{"replaced in place", "{\n  \"title\": \"T\",\n  \"enabled\": true,\n  \"n\": 9007199254740993\n}\n", "{\n  \"title\": \"T\",\n  \"enabled\": false,\n  \"n\": 9007199254740993\n}\n", false},
		{"appended, indented like the others", "{\n    \"title\": \"T\",\n    \"argDict\": {\"a\": [1, 2]}\n}\n", "{\n    \"title\": \"T\",\n    \"argDict\": {\"a\": [1, 2]},\n    \"enabled\": false\n}\n", false},
		{"appended on one line", `{"title": "T", "x": {"enabled": true}}`, `{"title": "T", "x": {"enabled": true}, "enabled": true}`, true},
		{"nested fields untouched", `{"x": {"enabled": true}, "enabled": 1}`, `{"x": {"enabled": true}, "enabled": false}`, false},
		{"empty object", `{ }`, `{"enabled": true }`, true},
		{"every duplicate", `{"enabled": true, "enabled": true}`, `{"enabled": false, "enabled": false}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := setJSONField(tc.in, "enabled", tc.value)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
	for _, bad := range []string{``, `[]`, `{"a": }`, `{"a": 1} x`, `{"a": 1`, `"enabled"`} {
		_, err := setJSONField(bad, "enabled", true)
		require.Error(t, err, "%q", bad)
	}
}
