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

// Code the sandbox could not compile, or could not compile without crashing or stalling the
// process, is a problem at check, with its position and the limit it breaks: the 1 MB
// chain of "!" (which crashed the next serve), a 100,000-term sum (70 s to compile), a constant
// && chain (time doubling with each operator), and an early error only goja's compiler finds.
func TestCodeTheSandboxCannotCompile(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, js, want, msg string
	}{
		{"a million prefix operators", "exports.f=function(){return " + strings.Repeat("!", 1_000_000) + "1};",
			"services/S/index.js:1:1028: js_syntax", "nested more than 1000 levels"},
		{"a long sum", "exports.f = function () {\n  return " + strings.Repeat("1 + ", 100_000) + "1;\n};\n",
			"services/S/index.js:2:10: js_syntax", "nested more than 1000 levels"},
		{"a constant && chain", "exports.f = function () {\n  return " + strings.Repeat("1 && ", 40) + "1;\n};\n",
			"services/S/index.js:2:10: js_syntax", "more than 100000 steps"},
		{"an early error of the compiler", "let a = 1;\nlet a = 2;\nexports.f = function () { return a };\n",
			"services/S/index.js:2:5: js_syntax", "JavaScript syntax error: Identifier 'a' has already been declared"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := newApp(t, map[string]string{"services/S/e.json": serviceJSON, "services/S/index.js": tc.js})
			ps := Check(opts(dir))
			var got []string
			for _, p := range ps {
				got = append(got, where(p))
			}
			require.Equal(t, []string{tc.want}, got, "%v", ps)
			require.Contains(t, ps[0].Message, tc.msg)
			_, err := Load(opts(dir))
			require.ErrorIs(t, err, ErrInvalid)
		})
	}
}
