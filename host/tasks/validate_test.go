package tasks_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/elements"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/tasks"
)

// check checks an app of these files (app.json is added) with ValidateTemplate wired the way
// the host wires it.
func check(t *testing.T, files map[string]string) []registry.Problem {
	t.Helper()
	dir := t.TempDir()
	files["app.json"] = `{"name": "app"}`
	for name, text := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	}
	return registry.Check(registry.Options{AppDir: dir, Builtins: elements.FS, Validators: map[string]func(*registry.Snapshot, *registry.Element) []registry.Problem{
		"tasks.Meta": tasks.ValidateTemplate,
	}})
}

func TestValidateTemplate(t *testing.T) {
	t.Parallel()
	const head = `{"type": "tasks.NormalType", "funcName": "services.TaskSvc.getTask", `
	cases := []struct {
		name string
		rest string // the e.json after head
		want []string
		msg  string // the first problem's message contains this
	}{
		{"5-field cron", `"repeatType": "cron", "cron": "*/5 * * * *"}`, nil, ""},
		{"6-field cron, seconds first", `"repeatType": "cron", "cron": "30 0 3 * * MON-FRI"}`, nil, ""},
		{"cron field out of range", "\"repeatType\": \"cron\",\n  \"cron\": \"61 * * * *\"}",
			[]string{"tasks/T/e.json:2:11: bad_cron"}, `minute field "61"`},
		{"cron with too many fields", "\"repeatType\": \"cron\",\n\"cron\": \"0 0 0 0 * * *\"}",
			[]string{"tasks/T/e.json:2:9: bad_cron"}, "it has 7 fields"},
		{"cron with a timezone prefix", "\"repeatType\": \"cron\",\n\"cron\": \"CRON_TZ=UTC 0 3 * * *\"}",
			[]string{"tasks/T/e.json:2:9: bad_cron"}, "timezone field"},
		{"cron naming no real date", "\"repeatType\": \"cron\",\n\"cron\": \"0 0 30 2 *\"}",
			[]string{"tasks/T/e.json:2:9: bad_cron"}, "30 February"},
		{"a bad cron is reported whatever the repeatType", "\n\"cron\": \"every day\"}",
			[]string{"tasks/T/e.json:2:9: bad_cron"}, "it has 2 fields"},
		{"interval of a second", `"repeatType": "interval", "interval": "1s"}`, nil, ""},
		{"interval under a second", "\"repeatType\": \"interval\",\n\"interval\": \"500ms\"}",
			[]string{"tasks/T/e.json:2:13: bad_value"}, "shorter than 1s"},
		{"zero interval", "\"repeatType\": \"interval\",\n\"interval\": \"0s\"}",
			[]string{"tasks/T/e.json:2:13: bad_value"}, "use 1s or more"},
		{"an interval is not checked for a template that does not repeat by it", `"interval": "0s"}`, nil, ""},
		{"cron template with a leftover interval", "\"repeatType\": \"cron\", \"cron\": \"0 3 * * *\",\n\"interval\": \"10m\"}",
			[]string{"tasks/T/e.json:2:13: bad_config"}, `repeatType "cron" does not use "interval"`},
		{"interval template with a leftover cron", "\"repeatType\": \"interval\", \"interval\": \"10m\",\n\"cron\": \"0 3 * * *\"}",
			[]string{"tasks/T/e.json:2:9: bad_config"}, `set "repeatType": "cron"`},
		// Each retry the policy arithmetic (host/retry) could not run is one problem of the registry's,
		// at the field: a template loads only with a retry Parse accepts.
		{"retry every 100ms", `"retry": {"policy": "default", "interval": "100ms", "maxAttempts": 3}}`, nil, ""},
		{"retry by an unknown policy", "\n\"retry\": {\"policy\": \"sometimes\"}}", []string{"tasks/T/e.json:2:21: bad_enum"}, "sometimes"},
		{"retry with no interval", "\n\"retry\": {\"policy\": \"default\", \"interval\": \"0s\"}}", []string{"tasks/T/e.json:2:44: bad_value"}, "interval above zero"},
		{"retry with an unreadable interval", "\n\"retry\": {\"interval\": \"soon\"}}", []string{"tasks/T/e.json:2:23: bad_duration"}, "soon"},
		{"retry with no tries", "\n\"retry\": {\"policy\": \"default\", \"maxAttempts\": 0}}", []string{"tasks/T/e.json:2:47: bad_value"}, "minimum 1"},
		{"cyclic retry without a window", "\n\"retry\": {\"policy\": \"cyclic\"}}", []string{"tasks/T/e.json:2:10: missing_field"}, "window"},
		{"exponential retry capped below its interval", "\n\"retry\": {\"policy\": \"exponential\", \"interval\": \"1m\", \"maxInterval\": \"10s\"}}",
			[]string{"tasks/T/e.json:2:69: bad_value"}, "maxInterval"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ps := check(t, map[string]string{"tasks/T/e.json": head + tc.rest})
			var got []string
			for _, p := range ps {
				got = append(got, strings.TrimSuffix(p.String(), p.Message)+p.Code)
			}
			require.Equal(t, tc.want, got, "all problems: %v", ps)
			if tc.msg != "" {
				require.Contains(t, ps[0].Message, tc.msg)
			}
		})
	}
}

// A cron a user Type sets for its instances is reported on each instance's e.json, which has no
// position for a value it does not write.
func TestValidateTemplateInheritedCron(t *testing.T) {
	t.Parallel()
	ps := check(t, map[string]string{
		"tasks/Nightly/e.json": `{"type": "tasks.Meta", "schema": {"repeatType": {"type": "string"}, "cron": {"type": "cron"}},
			"repeatType": "cron", "cron": "0 25 * * *"}`,
		"tasks/Backup/e.json": `{"type": "tasks.Nightly", "funcName": "services.TaskSvc.getTask"}`,
	})
	require.Len(t, ps, 1, "%v", ps)
	require.Equal(t, registry.Problem{Element: "tasks.Backup", File: "tasks/Backup/e.json", Code: registry.CodeBadCron, Message: ps[0].Message}, ps[0])
	require.Contains(t, ps[0].Message, `hour field "25"`)
}
