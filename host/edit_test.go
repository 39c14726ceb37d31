package host_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/backends"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/vocab"
)

// TestSaveElementInExtendingApp: the draft is validated on a copy of the app whose extends still
// reach the same apps, and problems in an extended app are named as trellis check names them.
func TestSaveElementInExtendingApp(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for name, text := range map[string]string{
		"base/app.json":                  `{"name": "base"}`,
		"base/services/BaseSvc/e.json":   `{"title": "Base", "type": "services.NormalType"}`,
		"base/services/BaseSvc/index.js": `exports.twice = function (x) { return 2 * x; };`,
		"app/app.json":                   `{"name": "app", "extends": ["../base"]}`,
	} {
		p := filepath.Join(root, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	}
	h, err := host.New(host.Config{AppDir: filepath.Join(root, "app"), Sandbox: host.SandboxInProcess, Watch: true}, backends.Open)
	require.NoError(t, err)
	require.NoError(t, h.Start(context.Background()))
	t.Cleanup(func() { _ = h.Stop(context.Background()) })
	ctx := context.Background()

	// A task template of the app whose funcName is a function of the extended app.
	def := `{"title": "T", "type": "tasks.NormalType", "funcName": "services.BaseSvc.twice"}`
	res, err := h.SaveElement(ctx, "tasks.T", def, nil, "", false)
	require.NoError(t, err)
	require.Equal(t, true, res["current"])
	require.NotNil(t, h.Snapshot().Elements["tasks.T"])

	// A function the extended app lacks is a problem of the draft.
	_, err = h.SaveElement(ctx, "tasks.U", `{"title": "U", "type": "tasks.NormalType", "funcName": "services.BaseSvc.thrice"}`, nil, "", false)
	var ve *registry.ValidationError
	require.True(t, errors.As(err, &ve), "%v", err)
	require.NotEmpty(t, ve.Problems)
	for _, p := range ve.Problems {
		require.Equal(t, "tasks/U/e.json", p.File, "%+v", p)
	}
	require.NoDirExists(t, filepath.Join(root, "app/tasks/U"))

	// The app's element overriding the extended one's is deleted: the parent's comes back.
	_, err = h.SaveElement(ctx, "services.BaseSvc", `{"title": "Mine", "type": "services.NormalType"}`,
		map[string]string{"index.js": `exports.twice = function (x) { return 20 * x; };`}, "", false)
	require.NoError(t, err)
	require.Equal(t, registry.OriginApp, h.Snapshot().Elements["services.BaseSvc"].Origin)
	v, ok := h.ElementVersion("services.BaseSvc")
	require.True(t, ok)
	out, err := h.DeleteElement(ctx, "services.BaseSvc", v, false)
	require.NoError(t, err)
	require.Equal(t, registry.OriginParent, out["restored"])
	_, ok = h.ElementVersion("services.BaseSvc")
	require.False(t, ok, "the extended app's element is not the app's to edit")

	// Problems inside the extended app are named relative to the app, as trellis check does.
	require.NoError(t, os.WriteFile(filepath.Join(root, "base/services/BaseSvc/index.js"), []byte("exports.twice = function (x) {"), 0o644))
	_, err = h.SaveElement(ctx, "tasks.V", `{"title": "V", "type": "tasks.NormalType"}`, nil, "", false)
	require.True(t, errors.As(err, &ve), "%v", err)
	want := registry.Check(host.RegistryOptions(filepath.Join(root, "app")))
	require.NotEmpty(t, want)
	files := map[string]bool{}
	for _, p := range ve.Problems {
		files[p.File] = true
	}
	for _, p := range want {
		require.True(t, files[p.File], "problem file %q as trellis check names it; got %v", p.File, files)
	}
}

// TestSavesAreCurrent: back-to-back saves whose files keep their size are each current when
// the save answers: the next call runs them, without waiting for the watcher's debounce.
func TestSavesAreCurrent(t *testing.T) {
	t.Parallel()
	h, err := host.New(host.Config{AppDir: writeApp(t, map[string]string{"app.json": `{"name": "quick"}`}), Sandbox: host.SandboxInProcess, Watch: true}, backends.Open)
	require.NoError(t, err)
	require.NoError(t, h.Start(context.Background()))
	t.Cleanup(func() { _ = h.Stop(context.Background()) })
	ctx := context.Background()
	def := `{"title": "Q", "type": "services.NormalType"}`
	for i := 0; i < 30; i++ {
		js := fmt.Sprintf("exports.n = function () { return %d; };", i%10)
		res, err := h.SaveElement(ctx, "services.Q", def, map[string]string{"index.js": js}, "", true)
		require.NoError(t, err)
		require.Equal(t, true, res["current"], "save %d", i)
		out, err := h.CallService(ctx, "services.Q", "n", nil)
		require.NoError(t, err)
		require.EqualValues(t, i%10, out.Value, "save %d", i)
	}
}

// TestSetElementField: the console's switch changes one field of an app element's e.json and
// nothing else; the task center follows at once; built-in, unknown and invalid values are
// refused and write nothing.
func TestSetElementField(t *testing.T) {
	t.Parallel()
	def := "{\n  \"title\": \"Tick\",\n  \"type\": \"tasks.NormalType\",\n  \"repeatType\": \"interval\",\n  \"interval\": \"1h\",\n  \"funcName\": \"run\",\n  \"argDict\": {\"big\": 9007199254740993}\n}\n"
	app := writeApp(t, map[string]string{
		"app.json":            `{"name": "switch"}`,
		"tasks/Tick/e.json":   def,
		"tasks/Tick/index.js": `exports.run = function () { return 1; };`,
	})
	h, err := host.New(host.Config{AppDir: app, Sandbox: host.SandboxInProcess, Watch: true, ServeEvents: true}, backends.Open)
	require.NoError(t, err)
	require.NoError(t, h.Start(context.Background()))
	t.Cleanup(func() { _ = h.Stop(context.Background()) })
	ctx := context.Background()
	state := func() (enabled bool, next string) {
		for _, s := range h.Tasks().TemplateStates("tasks.Tick") {
			return s.Enabled, s.NextFireTime
		}
		t.Fatal("tasks.Tick is not listed")
		return
	}
	on, next := state()
	require.True(t, on)
	require.NotEmpty(t, next)

	res, err := h.SetElementField(ctx, "tasks.Tick", "enabled", false)
	require.NoError(t, err)
	require.Equal(t, true, res["current"])
	b, err := os.ReadFile(filepath.Join(app, "tasks/Tick/e.json"))
	require.NoError(t, err)
	require.Equal(t, strings.Replace(def, "}\n}\n", "},\n  \"enabled\": false\n}\n", 1), string(b), "only the field is added")
	on, next = state()
	require.False(t, on)
	require.Empty(t, next, "a disabled template has no next tick")
	js, err := os.ReadFile(filepath.Join(app, "tasks/Tick/index.js"))
	require.NoError(t, err)
	require.Equal(t, `exports.run = function () { return 1; };`, string(js))

	_, err = h.SetElementField(ctx, "tasks.Tick", "enabled", true)
	require.NoError(t, err)
	on, _ = state()
	require.True(t, on)

	_, err = h.SetElementField(ctx, "tasks.Nope", "enabled", true)
	require.ErrorIs(t, err, host.ErrNotFound)
	_, err = h.SetElementField(ctx, "services.TaskSvc", "enabled", true)
	require.Equal(t, "conflict", vocab.CodeOf(err), "%v", err)
	before, _ := h.ElementVersion("tasks.Tick")
	_, err = h.SetElementField(ctx, "tasks.Tick", "enabled", "yes")
	var ve *registry.ValidationError
	require.True(t, errors.As(err, &ve), "a wrong type is a validation problem: %v", err)
	after, _ := h.ElementVersion("tasks.Tick")
	require.Equal(t, before, after, "a refused change writes nothing")
}
