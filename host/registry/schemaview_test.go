package registry

import (
	"context"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/elements"
)

// builtinsWith copies the built-in app and replaces some of its files.
func builtinsWith(t *testing.T, replace map[string]string) fs.FS {
	t.Helper()
	out := fstest.MapFS{}
	require.NoError(t, fs.WalkDir(elements.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(elements.FS, p)
		out[p] = &fstest.MapFile{Data: b}
		return err
	}))
	for p, text := range replace {
		out[p] = &fstest.MapFile{Data: []byte(text)}
	}
	return out
}

// TestSchemaIsTheRegistrys: Schema serves the fields validation uses, so a field added to a
// built-in Meta's schema shows up in every instance's schema, and what Schema says is required
// is what a load demands.
func TestSchemaIsTheRegistrys(t *testing.T) {
	meta, err := fs.ReadFile(elements.FS, "events/Meta/e.json")
	require.NoError(t, err)
	extra := strings.Replace(string(meta), `"schema": {`, `"schema": {
    "zzPriority": {"type": "integer", "default": 3, "minimum": 1, "description": "added by the test"},`, 1)
	require.NotEqual(t, string(meta), extra)
	dir := newApp(t, map[string]string{
		"events/OnX/e.json":   `{"type": "events.NormalType", "sender": "x.Y"}`,
		"events/OnX/index.js": eventJS,
	})
	o := Options{AppDir: dir, Builtins: builtinsWith(t, map[string]string{"events/Meta/e.json": extra})}
	snap := mustLoad(t, o)

	sc := snap.Schema("events.OnX")
	require.NotNil(t, sc)
	require.Equal(t, LayerInstance, sc.Layer)
	f := sc.Fields["zzPriority"]
	require.NotNil(t, f, "a field added to the Meta's schema is in its instances' schema")
	require.Equal(t, TypeInteger, f.Type)
	require.Equal(t, float64(3), f.Default)
	require.Equal(t, "added by the test", f.Description)
	require.True(t, sc.Fields["sender"].Required, "the Type's own field")
	require.Equal(t, []any{"pool", "singleton", "broadcast"}, sc.Fields["handlerType"].Enum)
	require.Equal(t, TypeDuration, sc.Fields["retry"].Properties["interval"].Type)
	require.Contains(t, sc.Universal, "title")
	require.NotContains(t, sc.Universal, "schema", "schema is for Metas and Types")
	require.Equal(t, snap.Elements["events.NormalType"].Definition["handler"], "handle")

	// Every field validation knows, and only those, for every element of the built-in app.
	ev := &evaluation{winners: map[string]*source{}, layer: map[string]Layer{}, meta: map[string]string{}, schemas: map[string]map[string]*field{}}
	for _, e := range snap.Sorted() {
		ev.winners[e.FullName], ev.layer[e.FullName], ev.meta[e.FullName] = e.src, e.Layer, e.Meta
	}
	for _, e := range snap.Sorted() {
		var want map[string]*field
		switch e.Layer {
		case LayerType:
			want = ev.schemaOf(e.FullName)
		case LayerInstance:
			want = ev.schemaOf(e.Type)
		}
		got := snap.Schema(e.FullName)
		require.Equal(t, len(want), len(got.Fields), e.FullName)
		for k, f := range want {
			require.Equal(t, f.export(), got.Fields[k], "%s.%s", e.FullName, k)
		}
	}

	// A value the schema rejects is a problem of that field.
	writeFiles(t, dir, map[string]string{"events/OnX/e.json": `{"type": "events.NormalType", "sender": "x.Y", "zzPriority": 0}`})
	_, err = Load(o)
	require.ErrorContains(t, err, "below the minimum 1")
}

// TestBrokenOnDisk: after a reload that keeps the last good version of a broken element, the
// snapshot still has the broken files, and a new broken element is known by them alone.
func TestBrokenOnDisk(t *testing.T) {
	dir := newApp(t, map[string]string{
		"services/Backup/e.json":   serviceJSON,
		"services/Backup/index.js": serviceJS,
	})
	w := NewWatcher(opts(dir), nil)
	require.NoError(t, w.Start(context.Background()))
	t.Cleanup(func() { _ = w.Stop(context.Background()) })
	require.Empty(t, w.Current().BrokenOnDisk())

	broken := "{\"title\": \"Backup\",\n \"type\": \"services.NormalType\", \"bogus\": 1}"
	writeFiles(t, dir, map[string]string{
		"services/Backup/e.json": broken,
		"services/New/e.json":    `{"type": "services.NormalType", "nope": true}`,
		"services/New/index.js":  serviceJS,
	})
	snap, err := w.Reload(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"services.Backup", "services.New"}, snap.BrokenOnDisk())
	files, ok := snap.OnDisk("services.Backup")
	require.True(t, ok)
	require.Equal(t, broken, files["e.json"])
	require.Equal(t, serviceJSON, snap.Elements["services.Backup"].Files["e.json"], "the last good version runs")
	require.Nil(t, snap.Elements["services.New"])
	files, ok = snap.OnDisk("services.New")
	require.True(t, ok)
	require.Equal(t, serviceJS, files["index.js"])
	sc := snap.Schema("services.New")
	require.NotNil(t, sc, "a new broken element has the schema its type gives it")
	require.Equal(t, LayerInstance, sc.Layer)

	// Broken differently, with the same problems: the snapshot has the new text.
	writeFiles(t, dir, map[string]string{"services/New/index.js": serviceJS + "// still broken\n"})
	snap, err = w.Reload(context.Background())
	require.NoError(t, err)
	files, _ = snap.OnDisk("services.New")
	require.Contains(t, files["index.js"], "still broken")

	writeFiles(t, dir, map[string]string{"services/Backup/e.json": serviceJSON, "services/New/e.json": serviceJSON})
	snap, err = w.Reload(context.Background())
	require.NoError(t, err)
	require.Empty(t, snap.BrokenOnDisk())
	_, ok = snap.OnDisk("services.Backup")
	require.False(t, ok)
}
