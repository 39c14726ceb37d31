package tasks

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/elements"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/timers/recurring"
)

// internalCenter is a Center on an app of files that was never started: enough for what the
// scheduler asks of it.
func internalCenter(t *testing.T, files map[string]string) *Center {
	t.Helper()
	dir := t.TempDir()
	files["app.json"] = `{"name": "internal", "timezone": "Asia/Tokyo"}`
	for name, text := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	}
	s, err := registry.Load(registry.Options{AppDir: dir, Builtins: elements.FS, Validators: map[string]func(*registry.Snapshot, *registry.Element) []registry.Problem{
		"tasks.Meta": ValidateTemplate,
	}})
	require.NoError(t, err)
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	require.NoError(t, err)
	return &Center{opts: Options{Snapshot: func() *registry.Snapshot { return s }, Location: func() *time.Location { return tokyo }}}
}

const echoService = `exports.echo = function (a) { return a; };`

func recurringFiles() map[string]string {
	return map[string]string{
		"services/Echo/e.json":   `{"title": "Echo", "type": "services.NormalType"}`,
		"services/Echo/index.js": echoService,
		"tasks/Cron/e.json": `{"title": "Cron", "type": "tasks.NormalType", "repeatType": "cron", "cron": "0 3 * * *",
			"misfire": "skip", "concurrency": "parallel", "funcName": "services.Echo.echo"}`,
		"tasks/Every/e.json": `{"title": "Every", "type": "tasks.NormalType", "repeatType": "interval", "interval": "10m",
			"timezone": "Europe/Paris", "funcName": "services.Echo.echo"}`,
		"tasks/Off/e.json": `{"title": "Off", "type": "tasks.NormalType", "repeatType": "interval", "interval": "10m", "enabled": false,
			"funcName": "services.Echo.echo"}`,
		"tasks/Once/e.json": `{"title": "Once", "type": "tasks.NormalType", "funcName": "services.Echo.echo"}`,
		"models/M/e.json":   `{"title": "M", "type": "models.NormalType", "fields": [{"name": "at", "type": "Datetime"}]}`,
		"tasks/Date/e.json": `{"title": "Date", "type": "tasks.NormalType", "repeatType": "dateField", "dateField": {"model": "models.M", "field": "at"},
			"funcName": "services.Echo.echo"}`,
	}
}

// TestRecurringTemplates: the scheduler is given the enabled cron and interval templates only,
// each with its timezone, policies and version.
func TestRecurringTemplates(t *testing.T) {
	t.Parallel()
	c := internalCenter(t, recurringFiles())
	got := map[string]recurring.Template{}
	for _, rt := range c.recurringTemplates() {
		require.NotEmpty(t, rt.Version)
		rt.Version = ""
		got[rt.FullName] = rt
	}
	tokyo, paris := c.opts.Location(), c.Templates()["tasks.Every"].Location
	require.Equal(t, "Europe/Paris", paris.String())
	require.Equal(t, map[string]recurring.Template{
		"tasks.Cron":  {FullName: "tasks.Cron", Cron: "0 3 * * *", Location: tokyo, Misfire: "skip", Concurrency: "parallel"},
		"tasks.Every": {FullName: "tasks.Every", Interval: 10 * time.Minute, Location: paris, Misfire: "fireOnce", Concurrency: "serial"},
	}, got)
}

// TestFireTickOfAGoneTemplate: a tick of a template removed or disabled since it was scheduled
// runs nothing; one that comes while the center stops is an error, so the scheduler logs it.
func TestFireTickOfAGoneTemplate(t *testing.T) {
	t.Parallel()
	c := internalCenter(t, recurringFiles())
	ctx := context.Background()
	at := time.Date(2030, 1, 1, 3, 0, 0, 0, time.UTC)
	require.NoError(t, c.fireTick(ctx, recurring.Tick{Template: "tasks.Gone", At: at}))
	require.NoError(t, c.fireTick(ctx, recurring.Tick{Template: "tasks.Off", At: at}))
	require.ErrorContains(t, c.fireTick(ctx, recurring.Tick{Template: "tasks.Cron", At: at}), "tasks: stopping")
}

// TestTemplatesAreComputedOncePerVersion: Templates is asked on every createTimerTask and tick;
// it walks the app once per snapshot and timezone.
func TestTemplatesAreComputedOncePerVersion(t *testing.T) {
	t.Parallel()
	c := internalCenter(t, recurringFiles())
	first := c.Templates()
	require.Same(t, first["tasks.Cron"], c.Templates()["tasks.Cron"])
	utc := time.UTC
	c.opts.Location = func() *time.Location { return utc }
	require.NotSame(t, first["tasks.Cron"], c.Templates()["tasks.Cron"], "a new app timezone is a new set of templates")
	require.Equal(t, utc, c.Templates()["tasks.Cron"].Location)
}
