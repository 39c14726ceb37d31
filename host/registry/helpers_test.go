package registry

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/elements"
)

// writeFiles writes files (path relative to dir → content) under dir. Each file is written
// to a temporary name and renamed into place, as editors save, so a watcher never sees a
// half-written file (which would make counts of published snapshots racy).
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		tmp := filepath.Join(filepath.Dir(full), ".tmp-"+filepath.Base(full))
		require.NoError(t, os.WriteFile(tmp, []byte(content), 0o644))
		require.NoError(t, os.Rename(tmp, full))
	}
}

// newApp makes an app directory with app.json (unless files has one) and files.
func newApp(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if _, ok := files["app.json"]; !ok {
		writeFiles(t, dir, map[string]string{"app.json": `{"name": "testapp"}`})
	}
	writeFiles(t, dir, files)
	return dir
}

func opts(dir string) Options { return Options{AppDir: dir, Builtins: elements.FS} }

// mustLoad loads and fails the test on any problem, printing them all.
func mustLoad(t testing.TB, o Options) *Snapshot {
	t.Helper()
	s, err := Load(o)
	require.NoError(t, err)
	return s
}

// where renders a problem's location and code, what the tables assert.
func where(p Problem) string { return p.String()[:len(p.String())-len(p.Message)] + p.Code }

// validService and friends are small valid elements tests build on.
var (
	serviceJSON = `{"title": "Backup", "type": "services.NormalType"}`
	serviceJS   = "exports.backupDatabase = function (args, ctx) { return args }\n"
	eventJS     = "exports.handle = function (event, ctx) {}\n"
	modelJSON   = `{"type": "models.NormalType", "fields": [{"name": "id", "type": "AutoInt"}, {"name": "title", "type": "Stext"}, {"name": "dueDate", "type": "Datetime"}]}`
)
