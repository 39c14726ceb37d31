package registry

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHostilePaths(t *testing.T) {
	t.Parallel()
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.js")
	require.NoError(t, os.WriteFile(secret, []byte("exports.handle = function () { /* SECRET */ }\n"), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(outside, "dir"), 0o755))

	cases := []struct {
		name  string
		files map[string]string
		setup func(t *testing.T, dir string)
		want  []string
		msg   string
	}{
		{"entry climbing out", map[string]string{"events/E/e.json": `{"type": "events.NormalType", "sender": "a", "webhook": {"url": "https://x"}, "entry": "../../etc/passwd"}`}, nil,
			[]string{"events/E/e.json:1:88: bad_path"}, "leaves the element's directory"},
		{"absolute entry", map[string]string{"events/E/e.json": `{"type": "events.NormalType", "sender": "a", "webhook": {"url": "https://x"}, "entry": "/etc/passwd"}`}, nil,
			[]string{"events/E/e.json:1:88: bad_path"}, "relative to the element"},
		{"absolute loader", map[string]string{"services/T/e.json": `{"type": "services.Meta", "loader": "/etc/passwd"}`}, nil,
			[]string{"services/T/e.json:1:37: bad_path"}, "relative to the element"},
		{"symlinked file leading out", map[string]string{"events/E/e.json": `{"type": "events.NormalType", "sender": "a"}`},
			func(t *testing.T, dir string) {
				require.NoError(t, os.Symlink(secret, filepath.Join(dir, "events/E/index.js")))
			},
			[]string{"events/E/e.json: missing_function", "events/E/index.js: outside_app"}, "needs code"},
		{"symlinked e.json leading out", map[string]string{"events/E/index.js": eventJS},
			func(t *testing.T, dir string) {
				require.NoError(t, os.Symlink(secret, filepath.Join(dir, "events/E/e.json")))
			},
			[]string{"events/E/e.json: outside_app"}, "outside the app"},
		{"symlinked directory leading out", nil,
			func(t *testing.T, dir string) {
				require.NoError(t, os.Symlink(filepath.Join(outside, "dir"), filepath.Join(dir, "services")))
			},
			[]string{"services: outside_app"}, "outside the app"},
		{"relative symlink climbing out", map[string]string{"services/S/e.json": serviceJSON},
			func(t *testing.T, dir string) {
				rel, err := filepath.Rel(filepath.Join(dir, "services/S"), secret)
				require.NoError(t, err)
				require.NoError(t, os.Symlink(rel, filepath.Join(dir, "services/S/index.js")))
			},
			[]string{"services/S/index.js: outside_app"}, "outside the app"},
		{"symlinked directory inside the app is not followed", map[string]string{"services/S/e.json": serviceJSON},
			func(t *testing.T, dir string) {
				require.NoError(t, os.Symlink(filepath.Join(dir, "services/S"), filepath.Join(dir, "services/Copy")))
			},
			[]string{"services/Copy: bad_path"}, "not followed"},
		{"file over 1 MiB", map[string]string{"services/S/e.json": serviceJSON,
			"services/S/big.js": "// " + strings.Repeat("x", MaxFileSize) + "\n"}, nil,
			[]string{"services/S/big.js: file_too_large"}, "over the 1048576-byte limit"},
		{"require of an absolute path", map[string]string{"services/S/e.json": serviceJSON,
			"services/S/index.js": "require('/etc/passwd')\n"}, nil,
			[]string{"services/S/index.js:1:9: bad_require"}, "not allowed"},
		{"require climbing out through commons", map[string]string{"services/S/e.json": serviceJSON,
			"services/S/index.js": "require('commons/../../../etc/passwd')\n"}, nil,
			[]string{"services/S/index.js:1:9: bad_require"}, "not allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := newApp(t, tc.files)
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			ps := Check(opts(dir))
			var got []string
			for _, p := range ps {
				got = append(got, where(p))
				require.NotContains(t, p.Message, "SECRET")
			}
			require.Equal(t, tc.want, got, "%v", ps)
			require.Contains(t, ps[0].Message, tc.msg)
		})
	}
}

// A symlink to a file inside the app is followed; the content never comes from outside.
func TestSymlinkInsideApp(t *testing.T) {
	t.Parallel()
	dir := newApp(t, map[string]string{
		"services/S/e.json": serviceJSON,
		"shared/handler.js": serviceJS,
	})
	require.NoError(t, os.Symlink(filepath.Join(dir, "shared/handler.js"), filepath.Join(dir, "services/S/index.js")))
	s := mustLoad(t, opts(dir))
	require.Equal(t, serviceJS, s.Elements["services.S"].Files["index.js"])
	require.Equal(t, []string{"backupDatabase"}, s.Elements["services.S"].Exports)
}

// A sourceMappingURL comment must not make the parser read a file.
func TestSourceMapCommentIsNotFollowed(t *testing.T) {
	t.Parallel()
	s := mustLoad(t, opts(newApp(t, map[string]string{
		"services/S/e.json":   serviceJSON,
		"services/S/index.js": serviceJS + "//# sourceMappingURL=/etc/shadow\n",
	})))
	require.Equal(t, []string{"backupDatabase"}, s.Elements["services.S"].Exports)
}
