package services

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/trellis-run/trellis/host/vocab"
)

var sendEventSpec = FunctionSpec{Name: "sendEventSpec", Args: []ArgSpec{
	{Name: "sender", Type: "Stext", Required: true},
	{Name: "kwargs", Type: "JitDict", Required: true},
	{Name: "eventType", Type: "Stext", Default: "events.NormalType"},
}}

var saveDateFieldTask = FunctionSpec{Name: "saveDateFieldTask", Args: []ArgSpec{
	{Name: "rowObj", Type: "RowData", Required: true},
}}

func TestBindArgsPositionalAndNamedAgree(t *testing.T) {
	t.Parallel()
	kwargs := map[string]any{"userId": int64(1)}
	pos, err := BindArgs(sendEventSpec, []any{"models.UserModel", kwargs})
	require.NoError(t, err)
	named, err := BindArgs(sendEventSpec, []any{map[string]any{"sender": "models.UserModel", "kwargs": kwargs}})
	require.NoError(t, err)
	require.Equal(t, pos, named)
	require.Equal(t, "events.NormalType", pos["eventType"], "the default fills a missing argument")
}

func TestBindArgsObjectTypedFirstArgument(t *testing.T) {
	t.Parallel()
	row := map[string]any{"postData": map[string]any{"id": int64(3)}, "prevData": nil}
	got, err := BindArgs(saveDateFieldTask, []any{row})
	require.NoError(t, err)
	require.Equal(t, row, got["rowObj"], "an object whose keys are not argument names is the argument itself")

	got, err = BindArgs(saveDateFieldTask, []any{map[string]any{"rowObj": row}})
	require.NoError(t, err)
	require.Equal(t, row, got["rowObj"], "an object keyed by the argument's name is named arguments")
}

func TestBindArgsErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []any
		want string
	}{
		{"missing required", []any{"models.U"}, `missing argument "kwargs"`},
		{"named missing required", []any{map[string]any{"sender": "models.U"}}, `missing argument "kwargs"`},
		{"wrong type", []any{"models.U", "not an object"}, `argument "kwargs" must be an object, got a string`},
		{"number for string", []any{int64(5), map[string]any{}}, `argument "sender" must be a string, got a number`},
		{"too many", []any{"a", map[string]any{}, "t", "extra"}, "takes at most 3 arguments"},
		{"array for object", []any{"a", []any{1}}, "must be an object, got an array"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := BindArgs(sendEventSpec, tc.args)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.Equal(t, vocab.CodeInvalidArgument, vocab.CodeOf(err))
		})
	}
}

func TestBindArgsUnknownNamedKeyIsPositional(t *testing.T) {
	t.Parallel()
	// {sender, bogus} is not a bag of named arguments, so it is the first positional argument,
	// which must be a string: the error says so instead of silently dropping "bogus".
	_, err := BindArgs(sendEventSpec, []any{map[string]any{"sender": "x", "bogus": 1}})
	require.ErrorContains(t, err, `argument "sender" must be a string, got an object`)
}

func TestParseFunctionList(t *testing.T) {
	t.Parallel()
	def := map[string]any{"functionList": []any{
		map[string]any{"name": "hello", "args": []any{map[string]any{"name": "who", "type": "Stext", "required": true}}},
		map[string]any{"title": "no name: skipped"},
	}}
	specs := ParseFunctionList(def)
	require.Len(t, specs, 1)
	require.Equal(t, "hello", specs[0].Name)
	require.Equal(t, []ArgSpec{{Name: "who", Type: "Stext", Required: true}}, specs[0].Args)
	require.Empty(t, ParseFunctionList(map[string]any{}))
}
