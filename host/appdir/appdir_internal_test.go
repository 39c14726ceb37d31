package appdir

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/elements"
	"github.com/trellis-run/trellis/host/registry"
)

// testDir is an app directory of files, its data directory where the host puts it by default.
func testDir(t *testing.T, files map[string]string) Dir {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	}
	return Dir{Registry: registry.Options{AppDir: dir, Builtins: elements.FS}, DataDir: filepath.Join(dir, ".trellis")}
}

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

// TestSaveAndDelete: versions hold editors to what they read, the app is validated before a
// write, and nothing is written outside real directories of the app or into the data directory.
func TestSaveAndDelete(t *testing.T) {
	t.Parallel()
	a := testDir(t, map[string]string{"app.json": `{"name": "edit"}`})
	def := `{"title": "S", "type": "services.NormalType"}`
	saved, err := a.Save("services.S", Draft{Definition: def, Files: map[string]string{"index.js": "exports.f = function () { return 1; };"}}, "", false)
	require.NoError(t, err)
	require.True(t, saved.Created)
	v, ok := a.Version("services.S")
	require.True(t, ok)
	require.Equal(t, saved.Version, v)
	require.Equal(t, VersionOf(saved.Files), v)

	// Saving again from no version, or from an old one, is a conflict carrying what is on disk.
	_, err = a.Save("services.S", Draft{Definition: def}, "", false)
	var ce *ConflictError
	require.True(t, errors.As(err, &ce), "%v", err)
	require.ErrorIs(t, err, ErrEditConflict)
	require.Equal(t, v, ce.Version)
	require.Equal(t, saved.Files, ce.Files)
	again, err := a.Save("services.S", Draft{Definition: def}, v, false)
	require.NoError(t, err)
	require.False(t, again.Created)
	require.NoFileExists(t, filepath.Join(a.Registry.AppDir, "services/S/index.js"), "the draft's files replace the old ones")

	// A draft with problems writes nothing.
	_, err = a.Save("services.Bad", Draft{Definition: `{"title": "B", "type": "services.NoSuchType"}`}, "", false)
	var ve *registry.ValidationError
	require.True(t, errors.As(err, &ve), "%v", err)
	require.NoDirExists(t, filepath.Join(a.Registry.AppDir, "services/Bad"))

	// Names that are not directories of the app are refused before anything is read.
	for _, name := range []string{"..", "services..S", "a/b", ".trellis.S", "services.S/../x"} {
		_, err := a.Save(name, Draft{Definition: def}, "", true)
		require.ErrorIs(t, err, ErrBadDraft, "%q", name)
	}
	_, err = a.Save("services.S", Draft{Definition: def, Files: map[string]string{"../x.js": ""}}, "", true)
	require.ErrorIs(t, err, ErrBadDraft)
	b := a
	b.DataDir = filepath.Join(a.Registry.AppDir, "data")
	_, err = b.Save("data.S", Draft{Definition: def}, "", true)
	require.ErrorIs(t, err, ErrBadDraft, "the data directory is never an element's")
	outside := t.TempDir()
	require.NoError(t, os.Symlink(outside, filepath.Join(a.Registry.AppDir, "linked")))
	_, err = a.Save("linked.S", Draft{Definition: def}, "", true)
	require.ErrorIs(t, err, ErrBadDraft, "no symlink is followed")
	entries, err := os.ReadDir(outside)
	require.NoError(t, err)
	require.Empty(t, entries)
	require.NoError(t, os.Remove(filepath.Join(a.Registry.AppDir, "linked")))

	// Delete holds to the version too, and an element the app does not hold is ErrNoElement.
	require.ErrorIs(t, a.Delete("services.S", "", false), ErrEditConflict)
	v, _ = a.Version("services.S")
	require.NoError(t, a.Delete("services.S", v, false))
	require.NoDirExists(t, filepath.Join(a.Registry.AppDir, "services/S"))
	_, ok = a.Version("services.S")
	require.False(t, ok)
	require.ErrorIs(t, a.Delete("services.S", "", true), ErrNoElement)
	entries, err = os.ReadDir(filepath.Join(a.Registry.AppDir, "services"))
	require.NoError(t, err)
	require.Empty(t, entries, "no staging or trash left")
}

// TestOverlayOverABigFile: a file over the registry's limit elsewhere in the app is the same
// problem on the validation copy (which does not copy its content).
func TestOverlayOverABigFile(t *testing.T) {
	t.Parallel()
	a := testDir(t, map[string]string{"app.json": `{"name": "big"}`})
	require.NoError(t, os.MkdirAll(filepath.Join(a.Registry.AppDir, "commons"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(a.Registry.AppDir, "commons/huge.json"), make([]byte, registry.MaxFileSize+1), 0o644))
	_, err := a.Overlay("services.S", Draft{Definition: `{"title": "S", "type": "services.NormalType"}`})
	var ve *registry.ValidationError
	require.True(t, errors.As(err, &ve), "%v", err)
	require.Equal(t, "file_too_large", ve.Problems[0].Code, "%+v", ve.Problems)
	require.Equal(t, "commons/huge.json", ve.Problems[0].File)
}
