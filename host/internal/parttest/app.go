package parttest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/registry"
)

// WriteApp writes files (slash-separated paths to contents) to a new t.TempDir() and returns the
// directory. An app.json naming the app name is added when files have none; files is not changed.
func WriteApp(t testing.TB, name string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if _, ok := files["app.json"]; !ok {
		files = With(files, "app.json", `{"name": "`+name+`"}`)
	}
	for path, text := range files {
		p := filepath.Join(dir, filepath.FromSlash(path))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	}
	return dir
}

// LoadApp writes the app name of files (WriteApp) and loads it through the registry as the host
// does (host.RegistryOptions: the built-in elements and the parts' validators). The test fails if
// it does not load.
func LoadApp(t testing.TB, name string, files map[string]string) *registry.Snapshot {
	t.Helper()
	snap, err := registry.Load(host.RegistryOptions(WriteApp(t, name, files)))
	require.NoError(t, err)
	return snap
}

// With is a copy of files with one more file, name, of text (or with text in place of name's).
func With(files map[string]string, name, text string) map[string]string {
	out := make(map[string]string, len(files)+1)
	for k, v := range files {
		out[k] = v
	}
	out[name] = text
	return out
}

// SourceOf is what the host gives the sandbox for s (host.SourceOf), plus the ProbeElement.
func SourceOf(s *registry.Snapshot) *jsvm.Source {
	src := host.SourceOf(s)
	src.Elements[ProbeElement] = &jsvm.Element{FullName: ProbeElement, Kind: jsvm.KindHost, Methods: []string{"gate", "hit"}}
	return src
}

// NewVM starts an in-process sandbox whose host calls p serves, loaded with SourceOf(snap). It is
// closed when the test ends.
func NewVM(t testing.TB, p *Probe, snap *registry.Snapshot) *jsvm.VM {
	t.Helper()
	vm, err := jsvm.New(jsvm.Options{Host: p})
	require.NoError(t, err)
	t.Cleanup(func() { _ = vm.Close() })
	require.NoError(t, vm.Load(SourceOf(snap)))
	return vm
}
