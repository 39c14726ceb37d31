package host

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheckFileName(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"index.js", "lib/util.js", "README.md", "data/x.json", "a-b_c$.v2.js"} {
		require.NoError(t, checkFileName(ok), ok)
	}
	for _, bad := range []string{"", "e.json", "../x.js", "a/../../x.js", "/abs.js", `a\b.js`, "a\x00.js", "%2e%2e/x.js",
		"\uff0e\uff0e/x.js", "\u2025/x.js", "caf\u00e9.js", ".trellis/x.js", ".x.js", "a//b.js", "a/./b.js", "x..js/..",
		"node_modules/x.js", "run.sh", "a/b", "dir/"} {
		require.ErrorIs(t, checkFileName(bad), ErrBadDraft, "%q", bad)
	}
}

func TestVersionOf(t *testing.T) {
	t.Parallel()
	a := VersionOf(map[string]string{"e.json": "{}", "index.js": "x"})
	require.Equal(t, a, VersionOf(map[string]string{"index.js": "x", "e.json": "{}"}), "map order does not matter")
	require.NotEqual(t, a, VersionOf(map[string]string{"e.json": "{}", "index.js": "y"}), "content")
	require.NotEqual(t, a, VersionOf(map[string]string{"e.json": "{}", "main.js": "x"}), "names")
	// Name and content boundaries cannot be shifted into each other.
	require.NotEqual(t, VersionOf(map[string]string{"a": "bc"}), VersionOf(map[string]string{"ab": "c"}))
}

// TestWriteElementDir: the new version replaces the editable files whole; everything else in
// the directory is carried over as the same files (hard links), and no staging is left.
func TestWriteElementDir(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	dir := filepath.Join(parent, "Svc")
	for name, text := range map[string]string{"e.json": "{}", "index.js": "old", "old.js": "gone", "notes.txt": "kept",
		"Inner/e.json": "{}", "Inner/index.js": "inner", "lib/util.js": "old util"} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	}
	before, err := os.Stat(filepath.Join(dir, "notes.txt"))
	require.NoError(t, err)
	require.NoError(t, writeElementDir(dir, map[string]string{"e.json": `{"title": "new"}`, "index.js": "new", "lib/more.js": "more"}))

	files, ok, err := readElement(dir)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, map[string]string{"e.json": `{"title": "new"}`, "index.js": "new", "lib/more.js": "more"}, files)
	after, err := os.Stat(filepath.Join(dir, "notes.txt"))
	require.NoError(t, err)
	require.True(t, os.SameFile(before, after), "other files are carried over, not rewritten")
	b, err := os.ReadFile(filepath.Join(dir, "Inner/index.js"))
	require.NoError(t, err)
	require.Equal(t, "inner", string(b), "nested elements are kept")
	entries, err := os.ReadDir(parent)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no staging left: %v", entries)

	// A new element is created in one rename too.
	fresh := filepath.Join(parent, "deep", "Fresh")
	require.NoError(t, writeElementDir(fresh, map[string]string{"e.json": "{}", "index.js": "x"}))
	files, ok, err = readElement(fresh)
	require.NoError(t, err)
	require.True(t, ok)
	require.Len(t, files, 2)
}
