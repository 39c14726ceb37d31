package registry

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every problem kind, each with the exact "file:line:col: code" it must be reported at and a
// piece of the message that tells the user what to do.
func TestProblems(t *testing.T) {
	t.Parallel()
	ev := func(extra string) string {
		return `{"type": "events.NormalType", "sender": "models.UserModel"` + extra + `}`
	}
	cases := []struct {
		name  string
		files map[string]string
		want  []string // where(): "file:line:col: code", in report order
		msg   string   // the first problem's message contains this
	}{
		{"bad JSON", map[string]string{"events/E/e.json": "{\n  \"type\": \"events.NormalType\",\n  \"sender\": x\n}"},
			[]string{"events/E/e.json:3:13: bad_json"}, "invalid character 'x'"},
		{"bad JSON: unexpected end", map[string]string{"events/E/e.json": "{\n  \"type\": \"events.NormalType\"\n"},
			[]string{"events/E/e.json:2:30: bad_json"}, "unexpected end"},
		{"bad JSON after a multibyte title counts characters", map[string]string{"events/E/e.json": `{"title": "登录事件", "sender": ,}`},
			[]string{"events/E/e.json:1:29: bad_json"}, "invalid character ','"},
		{"duplicate key", map[string]string{"events/E/e.json": "{\"type\": \"events.NormalType\",\n \"sender\": \"a\",\n \"sender\": \"b\"}", "events/E/index.js": eventJS},
			[]string{"events/E/e.json:3:2: duplicate_key"}, `"sender" appears twice`},
		{"e.json not an object", map[string]string{"events/E/e.json": `[1, 2]`},
			[]string{"events/E/e.json:1:1: wrong_type"}, "must be a JSON object"},
		{"unknown field, with a suggestion", map[string]string{"events/E/e.json": "{\"type\": \"events.NormalType\", \"sender\": \"a\",\n  \"handlr\": \"go\"}", "events/E/index.js": eventJS},
			[]string{"events/E/e.json:2:3: unknown_field"}, `did you mean "handler"?`},
		{"unknown nested field", map[string]string{"events/E/e.json": ev(`, "retry": {"polcy": "none"}`), "events/E/index.js": eventJS},
			[]string{"events/E/e.json:1:71: unknown_field"}, `did you mean "policy"?`},
		{"wrong field type", map[string]string{"events/E/e.json": ev(`, "enabled": "yes"`), "events/E/index.js": eventJS},
			[]string{"events/E/e.json:1:72: wrong_type"}, `must be true or false, not the string "yes"`},
		{"integer expected", map[string]string{"events/E/e.json": ev(`, "retry": {"maxAttempts": 2.5}`), "events/E/index.js": eventJS},
			[]string{"events/E/e.json:1:86: wrong_type"}, "whole number"},
		{"integer past 2^53", map[string]string{"events/E/e.json": ev(`, "retry": {"maxAttempts": 9007199254740993}`), "events/E/index.js": eventJS},
			[]string{"events/E/e.json:1:86: wrong_type"}, "9007199254740993 is too large: whole numbers here are at most 2^53"},
		{"below minimum", map[string]string{"events/E/e.json": ev(`, "retry": {"maxAttempts": 0}`), "events/E/index.js": eventJS},
			[]string{"events/E/e.json:1:86: bad_value"}, "below the minimum 1"},
		{"bad enum", map[string]string{"events/E/e.json": ev(`, "handlerType": "fanout"`), "events/E/index.js": eventJS},
			[]string{"events/E/e.json:1:76: bad_enum"}, `use one of: "pool", "singleton", "broadcast"`},
		{"bad pattern", map[string]string{"events/E/e.json": ev(`, "broadcastIdentifier": "env:1X"`), "events/E/index.js": eventJS},
			[]string{"events/E/e.json:1:84: bad_value"}, "required form"},
		{"missing required field", map[string]string{"events/E/e.json": "\n {\"type\": \"events.NormalType\"}", "events/E/index.js": eventJS},
			[]string{"events/E/e.json:2:2: missing_field"}, `required field "sender" is missing`},
		{"bad duration", map[string]string{"events/E/e.json": ev(`, "timeout": "5 minutes"`), "events/E/index.js": eventJS},
			[]string{"events/E/e.json:1:72: bad_duration"}, `like "30s"`},
		{"negative duration where not signed", map[string]string{"events/E/e.json": ev(`, "timeout": "-1h"`), "events/E/index.js": eventJS},
			[]string{"events/E/e.json:1:72: bad_duration"}, "negative"},
		{"cron that is not a string", map[string]string{
			"tasks/T/e.json":   "{\"type\": \"tasks.NormalType\", \"repeatType\": \"cron\", \"funcName\": \"run\",\n  \"cron\": 5}",
			"tasks/T/index.js": "exports.run = () => 1\n"},
			[]string{"tasks/T/e.json:2:11: wrong_type"}, `a cron string such as "0 3 * * *"`},
		{"bad timezone", map[string]string{
			"tasks/T/e.json":   `{"type": "tasks.NormalType", "repeatType": "interval", "interval": "10m", "funcName": "run", "timezone": "Mars/Olympus"}`,
			"tasks/T/index.js": "exports.run = () => 1\n"},
			[]string{"tasks/T/e.json:1:106: bad_timezone"}, "IANA"},
		{"unknown type", map[string]string{"events/E/e.json": `{"type": "events.NormalTyp", "sender": "a"}`},
			[]string{"events/E/e.json:1:10: unknown_type"}, `did you mean "events.NormalType"?`},
		{"type cycle", map[string]string{"x/A/e.json": `{"type": "x.B"}`, "x/B/e.json": `{"type": "x.A"}`},
			[]string{"x/A/e.json:1:10: type_cycle", "x/B/e.json:1:10: type_cycle"}, "must end at a Meta"},
		{"type is an instance", map[string]string{"x/I/e.json": `{"type": "services.TaskSvc"}`},
			[]string{"x/I/e.json:1:10: bad_type"}, "instance cannot be a type"},
		{"schema on an instance", map[string]string{"services/S/e.json": `{"type": "services.NormalType", "schema": {}}`},
			[]string{"services/S/e.json:1:33: bad_type"}, `"schema" is only for Metas and Types`},
		{"malformed schema in a user Type", map[string]string{"events/MyType/e.json": `{"type": "events.Meta", "schema": {"x": {"type": "text"}}}`},
			[]string{"events/MyType/e.json:1:50: bad_schema"}, `"text" is not one of`},
		{"schema default that does not fit", map[string]string{"events/MyType/e.json": `{"type": "events.Meta", "schema": {"x": {"type": "duration", "default": "soon"}}}`},
			[]string{"events/MyType/e.json:1:73: bad_schema"}, "default does not fit"},
		{"JS syntax error", map[string]string{"events/E/e.json": ev(""), "events/E/index.js": "exports.handle = function (e) {\n  return 1 +;\n}\n"},
			[]string{"events/E/index.js:2:13: js_syntax"}, "Unexpected token"},
		{"JS syntax error on line 1 is not shifted by the module wrapper", map[string]string{"events/E/e.json": ev(""), "events/E/index.js": "exports.handle = function (e) { return ) }\n"},
			[]string{"events/E/index.js:1:40: js_syntax"}, "Unexpected token"},
		{"JS syntax error in commons", map[string]string{"commons/util.js": "var x = ;\n"},
			[]string{"commons/util.js:1:9: js_syntax"}, "Unexpected token"},
		{"event handler not exported", map[string]string{"events/E/e.json": ev(`, "handler": "onLogin"`), "events/E/index.js": eventJS},
			[]string{"events/E/e.json:1:72: missing_function"}, "(it exports: handle)"},
		{"event without code", map[string]string{"events/E/e.json": ev("")},
			[]string{"events/E/e.json: missing_function"}, `add events/E/index.js with exports.handle`},
		{"webhook instead of code is fine, but needs a URL", map[string]string{"events/E/e.json": ev(`, "webhook": {"url": "ftp://x"}`)},
			[]string{"events/E/e.json:1:80: bad_value"}, "http:// or https://"},
		{"webhook without url", map[string]string{"events/E/e.json": ev(`, "webhook": {"mode": "async"}`)},
			[]string{"events/E/e.json:1:72: missing_field"}, `"url" is missing`},
		{"reliable broadcast with the instance identifier", map[string]string{"events/E/e.json": ev(`, "handlerType": "broadcast"`), "events/E/index.js": eventJS},
			[]string{"events/E/e.json:1:76: bad_config"}, `"broadcastIdentifier": "host"`},
		{"cyclic retry without a window", map[string]string{"events/E/e.json": ev(`, "retry": {"policy": "cyclic"}`), "events/E/index.js": eventJS},
			[]string{"events/E/e.json:1:70: missing_field"}, `needs a "window"`},
		{"signal receiver not exported", map[string]string{"signals/S/e.json": `{"type": "signals.NormalType"}`, "signals/S/index.js": "exports.handle = function () {}\n"},
			[]string{"signals/S/e.json: missing_function"}, `handler "receive" is not exported`},
		{"task function not exported", map[string]string{
			"tasks/T/e.json":   `{"type": "tasks.NormalType", "repeatType": "interval", "interval": "1m", "funcName": "runIt"}`,
			"tasks/T/index.js": "exports.run = () => 1\n"},
			[]string{"tasks/T/e.json:1:86: missing_function"}, "(it exports: run)"},
		{"task needs a funcName", map[string]string{"tasks/T/e.json": `{"type": "tasks.NormalType", "repeatType": "interval", "interval": "1m"}`},
			[]string{"tasks/T/e.json: missing_field"}, `needs "funcName"`},
		{"cron task without cron", map[string]string{"tasks/T/e.json": `{"type": "tasks.NormalType", "repeatType": "cron", "funcName": "services.TaskSvc.getTask"}`},
			[]string{"tasks/T/e.json:1:44: missing_field"}, `needs "cron"`},
		{"funcName names a service that does not export it", map[string]string{
			"services/BackupSvc/e.json": serviceJSON, "services/BackupSvc/index.js": serviceJS,
			"tasks/T/e.json": `{"type": "tasks.NormalType", "funcName": "services.BackupSvc.backup"}`},
			[]string{"tasks/T/e.json:1:42: missing_function"}, "services/BackupSvc/index.js does not export backup"},
		{"funcName names a missing service", map[string]string{"tasks/T/e.json": `{"type": "tasks.NormalType", "funcName": "services.BackupSvc.backup"}`},
			[]string{"tasks/T/e.json:1:42: unknown_element"}, "service services.BackupSvc does not exist"},
		{"funcName names something that is not a service", map[string]string{"models/M/e.json": modelJSON,
			"tasks/T/e.json": `{"type": "tasks.NormalType", "funcName": "models.M.create"}`},
			[]string{"tasks/T/e.json:1:42: wrong_element"}, "is not a service"},
		{"funcName names a native function that does not exist", map[string]string{"tasks/T/e.json": `{"type": "tasks.NormalType", "funcName": "services.TaskSvc.nope"}`},
			[]string{"tasks/T/e.json:1:42: missing_function"}, "it offers: getTaskTmplList, createTimerTask"},
		{"dateField model that does not exist", map[string]string{
			"tasks/T/e.json": `{"type": "tasks.NormalType", "repeatType": "dateField", "funcName": "services.TaskSvc.getTask", "dateField": {"model": "models.Order", "field": "dueDate"}}`},
			[]string{"tasks/T/e.json:1:120: unknown_element"}, `element "models.Order" does not exist`},
		{"dateField field that is not a date", map[string]string{"models/Order/e.json": modelJSON,
			"tasks/T/e.json": `{"type": "tasks.NormalType", "repeatType": "dateField", "funcName": "services.TaskSvc.getTask", "dateField": {"model": "models.Order", "field": "title", "offset": "-1h"}}`},
			[]string{"tasks/T/e.json:1:145: bad_field"}, "is Stext; a date-field task needs a Date or Datetime field"},
		{"dateField field that does not exist", map[string]string{"models/Order/e.json": modelJSON,
			"tasks/T/e.json": `{"type": "tasks.NormalType", "repeatType": "dateField", "funcName": "services.TaskSvc.getTask", "dateField": {"model": "models.Order", "field": "dueDat"}}`},
			[]string{"tasks/T/e.json:1:145: bad_field"}, `did you mean "dueDate"?`},
		{"model event on something that is not a model", map[string]string{"services/S/e.json": serviceJSON,
			"events/E/e.json": `{"type": "events.ModelType", "model": "services.S"}`, "events/E/index.js": eventJS},
			[]string{"events/E/e.json:1:39: wrong_element"}, "is not a models.Meta element"},
		{"model event on a field the model lacks", map[string]string{"models/Order/e.json": modelJSON,
			"events/E/e.json": `{"type": "events.ModelType", "model": "models.Order", "fields": ["dueDate", "nope"]}`, "events/E/index.js": eventJS},
			[]string{"events/E/e.json:1:77: bad_field"}, `has no field "nope"`},
		{"model with a bad field type and a repeated name", map[string]string{
			"models/M/e.json": `{"type": "models.NormalType", "fields": [{"name": "a", "type": "Text"}, {"name": "a", "type": "Stext"}]}`},
			[]string{"models/M/e.json:1:64: bad_enum", "models/M/e.json:1:82: bad_value"}, `"AutoInt", "Stext"`},
		{"functionList names a function the code lacks", map[string]string{
			"services/S/e.json": `{"type": "services.NormalType", "functionList": [{"name": "backupDatabase"}, {"name": "restore"}]}`, "services/S/index.js": serviceJS},
			[]string{"services/S/e.json:1:87: missing_function"}, `functionList names "restore"`},
		{"require of a Node module", map[string]string{"services/S/e.json": serviceJSON, "services/S/index.js": "const fs = require('fs')\n" + serviceJS},
			[]string{"services/S/index.js:1:20: bad_require"}, "no Node.js modules"},
		{"require of a missing file", map[string]string{"services/S/e.json": serviceJSON, "services/S/index.js": serviceJS + "require('./lib/helpers')\n"},
			[]string{"services/S/index.js:2:9: bad_require"}, "no such module"},
		{"require leaving the element", map[string]string{"services/S/e.json": serviceJSON, "services/S/index.js": serviceJS + "require('../Other/index.js')\n"},
			[]string{"services/S/index.js:2:9: bad_require"}, "move shared code to commons/"},
		{"require of a missing commons module", map[string]string{"services/S/e.json": serviceJSON, "services/S/index.js": serviceJS + "require('commons/nope')\n"},
			[]string{"services/S/index.js:2:9: bad_require"}, "no such module"},
		{"commons requiring outside commons", map[string]string{"commons/a.js": "require('../services/S/index.js')\n"},
			[]string{"commons/a.js:1:9: bad_require"}, "leaves commons/"},
		{"entry that does not exist", map[string]string{"services/S/e.json": `{"type": "services.NormalType", "entry": "main.js"}`, "services/S/index.js": serviceJS},
			[]string{"services/S/e.json:1:42: bad_path"}, `entry "main.js" does not exist`},
		{"loader on an instance", map[string]string{"services/S/e.json": `{"type": "services.NormalType", "loader": "loader.js"}`},
			[]string{"services/S/e.json:1:33: bad_type"}, "only for Types"},
		{"loader that does not export load", map[string]string{"services/MyType/e.json": `{"type": "services.Meta", "loader": "loader.js"}`,
			"services/MyType/loader.js": "exports.make = function () {}\n"},
			[]string{"services/MyType/e.json:1:37: missing_function"}, "exports.load = function (element, app)"},
		{"other JSON file of an element", map[string]string{"services/S/e.json": serviceJSON, "services/S/data.json": "{\"a\": }"},
			[]string{"services/S/data.json:1:7: bad_json"}, "invalid JSON"},
		{"directory name with a dot", map[string]string{"services/my.svc/e.json": serviceJSON},
			[]string{"services/my.svc/e.json: bad_path"}, "rename it"},
		{"app.json unknown field", map[string]string{"app.json": "{\"name\": \"x\",\n \"extend\": []}"},
			[]string{"app.json:2:2: unknown_field"}, `did you mean "extends"?`},
		{"app.json bad timezone", map[string]string{"app.json": `{"name": "x", "timezone": "Asia/Shangai"}`},
			[]string{"app.json:1:27: bad_timezone"}, "IANA"},
		{"app.json env must be strings", map[string]string{"app.json": `{"name": "x", "env": {"PORT": 80}}`},
			[]string{"app.json:1:31: wrong_type"}, "quote it"},
		{"app.json bad JSON", map[string]string{"app.json": `{"name": "x",}`},
			[]string{"app.json:1:14: bad_json"}, "invalid JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ps := Check(opts(newApp(t, tc.files)))
			got := make([]string, len(ps))
			for i, p := range ps {
				got[i] = where(p)
			}
			require.Equal(t, tc.want, got, "all problems: %v", ps)
			require.Contains(t, ps[0].Message, tc.msg)
		})
	}
}

// A bad app gets every problem in one pass, and Load returns them as one error.
func TestAllProblemsAtOnce(t *testing.T) {
	t.Parallel()
	dir := newApp(t, map[string]string{
		"events/A/e.json":   `{"type": "events.NormalType"}`,
		"events/A/index.js": eventJS,
		"events/B/e.json":   `{"type": "events.NormalType", "sender": "x", "timeout": "soon"}`,
		"events/B/index.js": "exports.handle = function ( {\n",
		"tasks/C/e.json":    `{"type": "tasks.NormalType", "timezone": "Mars/Olympus"}`,
	})
	_, err := Load(opts(dir))
	require.Error(t, err)
	require.True(t, errors.Is(err, ErrInvalid))
	var ve *ValidationError
	require.True(t, errors.As(err, &ve))
	codes := map[string]bool{}
	for _, p := range ve.Problems {
		codes[p.Code] = true
	}
	require.Equal(t, map[string]bool{CodeMissingField: true, CodeBadDuration: true, CodeJSSyntax: true, CodeBadTimezone: true}, codes)
	lines := strings.Split(err.Error(), "\n")
	require.Len(t, lines, len(ve.Problems))
	require.Equal(t, "events/A/e.json:1:1: "+ve.Problems[0].Message, lines[0])
	require.Equal(t, ve.Problems, Check(opts(dir)), "Check and Load agree")
}

func TestMissingApp(t *testing.T) {
	t.Parallel()
	ps := Check(Options{AppDir: t.TempDir() + "/nope"})
	require.Len(t, ps, 1)
	require.Equal(t, CodeNoApp, ps[0].Code)
	ps = Check(Options{AppDir: t.TempDir()})
	require.Len(t, ps, 1)
	require.Equal(t, "app.json: no_app", where(ps[0]))
	require.Equal(t, CodeNoApp, Check(Options{})[0].Code)
}

// A user's custom Validator gets every instance on its chain.
func TestValidators(t *testing.T) {
	t.Parallel()
	dir := newApp(t, map[string]string{
		"services/A/e.json": serviceJSON, "services/A/index.js": serviceJS,
		"services/B/e.json": serviceJSON, "services/B/index.js": serviceJS,
		"models/M/e.json": modelJSON,
	})
	var seen []string
	o := opts(dir)
	o.Validators = map[string]func(*Snapshot, *Element) []Problem{
		"services.Meta": func(s *Snapshot, e *Element) []Problem {
			seen = append(seen, e.FullName)
			if e.FullName == "services.B" {
				return []Problem{{File: "services/B/e.json", Message: "B is not allowed"}}
			}
			return nil
		},
	}
	ps := Check(o)
	require.Equal(t, []string{"services.A", "services.B", "events.services.EventSvc", "services.TaskSvc"}, sortedBy(seen, []string{"services.A", "services.B", "events.services.EventSvc", "services.TaskSvc"}))
	require.Equal(t, []Problem{{Element: "services.B", File: "services/B/e.json", Code: CodeInvalid, Message: "B is not allowed"}}, ps)
}

// A Validator's problems point where the user must edit: FieldProblem places one at the value
// in the instance's own e.json, or on that e.json when the value is inherited; a problem with
// no file is put on the instance's e.json, never printed as a bare fullName.
func TestValidatorPositions(t *testing.T) {
	t.Parallel()
	dir := newApp(t, map[string]string{
		"tasks/SlowType/e.json": `{"type": "tasks.Meta", "schema": {"every": {"type": "string"}}, "every": "fortnight"}`,
		"tasks/Own/e.json":      "{\"type\": \"tasks.SlowType\",\n  \"every\": \"blue moon\"}",
		"tasks/Inherits/e.json": `{"type": "tasks.SlowType"}`,
		"tasks/Plain/e.json":    `{"type": "tasks.NormalType"}`,
	})
	o := opts(dir)
	o.Validators = map[string]func(*Snapshot, *Element) []Problem{
		"tasks.SlowType": func(s *Snapshot, e *Element) []Problem {
			return []Problem{e.FieldProblem("every", CodeBadValue, "not a schedule")}
		},
		"tasks.NormalType": func(s *Snapshot, e *Element) []Problem {
			return []Problem{{Message: "no position"}}
		},
	}
	var got []string
	for _, p := range Check(o) {
		got = append(got, where(p)+" "+p.Element)
	}
	require.Equal(t, []string{
		"tasks/Inherits/e.json: bad_value tasks.Inherits",
		"tasks/Own/e.json:2:12: bad_value tasks.Own",
		"tasks/Plain/e.json: invalid tasks.Plain",
	}, got)
}

// sortedBy returns got reordered as in order (so the assertion is about the set, not the order),
// keeping anything unexpected at the end so it shows in the diff.
func sortedBy(got, order []string) []string {
	var out, rest []string
	for _, o := range order {
		for _, g := range got {
			if g == o {
				out = append(out, g)
			}
		}
	}
	for _, g := range got {
		if !contains(order, g) {
			rest = append(rest, g)
		}
	}
	return append(out, rest...)
}
