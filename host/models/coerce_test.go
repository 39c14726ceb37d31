package models_test

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/models"
)

func shanghai(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	return loc
}

func TestCoerceValue(t *testing.T) {
	t.Parallel()
	loc := shanghai(t)
	utc := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		require.NoError(t, err)
		return tm.UTC()
	}
	cases := []struct {
		typ  string
		in   any
		want any    // when err is ""
		err  string // a part of the error message
	}{
		// Integer
		{models.TypeInteger, 3.0, int64(3), ""},
		{models.TypeInteger, -7, int64(-7), ""},
		{models.TypeInteger, int64(math.MaxInt64), int64(math.MaxInt64), ""},
		{models.TypeInteger, uint8(9), int64(9), ""},
		{models.TypeInteger, json.Number("42"), int64(42), ""},
		{models.TypeInteger, json.Number("4.0"), int64(4), ""},
		{models.TypeInteger, -9007199254740993.0, int64(-9007199254740992), ""}, // the float64 given
		{models.TypeInteger, "42", nil, `field "v" is Integer; got "42" (a string)`},
		{models.TypeInteger, "abc", nil, `field "v" is Integer; got "abc" (a string)`},
		{models.TypeInteger, 1.5, nil, "got 1.5 (a number); give a whole number"},
		{models.TypeInteger, 1e19, nil, "out of the 64-bit integer range"},
		{models.TypeInteger, math.NaN(), nil, "give an integer"},
		{models.TypeInteger, uint64(math.MaxUint64), nil, "too large"},
		{models.TypeInteger, json.Number("1e400"), nil, "give an integer"},
		{models.TypeInteger, true, nil, "got true (a boolean)"},
		{models.TypeInteger, map[string]any{"a": 1}, nil, "got an object"},
		{models.TypeInteger, []any{1}, nil, "got an array"},
		// Numeric
		{models.TypeNumeric, 1.5, 1.5, ""},
		{models.TypeNumeric, 2, 2.0, ""},
		{models.TypeNumeric, json.Number("2.5"), 2.5, ""},
		{models.TypeNumeric, float32(0.5), 0.5, ""},
		{models.TypeNumeric, "2.5", nil, `got "2.5" (a string); give a number`},
		{models.TypeNumeric, math.Inf(1), nil, "finite"},
		// Stext and Ltext
		{models.TypeStext, "abc", "abc", ""},
		{models.TypeStext, "", "", ""},
		{models.TypeStext, strings.Repeat("é", 255), strings.Repeat("é", 255), ""},
		{models.TypeStext, strings.Repeat("é", 256), nil, "at most 255 characters; got 256 characters (use an Ltext field"},
		{models.TypeStext, 5, nil, "got 5 (a number); give a string"},
		{models.TypeStext, "a\x00b", nil, "NUL"},
		{models.TypeStext, "\xff", nil, "UTF-8"},
		{models.TypeLtext, strings.Repeat("long ", 10000), strings.Repeat("long ", 10000), ""},
		{models.TypeLtext, false, nil, "got false (a boolean)"},
		// Boolean
		{models.TypeBoolean, true, true, ""},
		{models.TypeBoolean, false, false, ""},
		{models.TypeBoolean, 1, nil, "give true or false"},
		{models.TypeBoolean, "true", nil, `got "true" (a string)`},
		// Date
		{models.TypeDate, "2024-05-01", "2024-05-01", ""},
		{models.TypeDate, " 2024-05-01 ", "2024-05-01", ""},
		{models.TypeDate, "2024-05-01 23:30:00", "2024-05-01", ""},
		{models.TypeDate, "2024-05-01T20:00:00Z", "2024-05-02", ""}, // 04:00 next day in Shanghai
		{models.TypeDate, 0, "1970-01-01", ""},
		{models.TypeDate, utc("2024-05-01T20:00:00Z"), "2024-05-02", ""},
		{models.TypeDate, "2024-02-30", nil, `got "2024-02-30" (a string); use "YYYY-MM-DD" or a datetime`},
		{models.TypeDate, "yesterday", nil, "yesterday"},
		{models.TypeDate, true, nil, "got true"},
		{models.TypeDate, int64(253402300800000), nil, "year 10000 is out of range"},
		// Datetime
		{models.TypeDatetime, "2024-05-01 08:00:00", utc("2024-05-01T00:00:00Z"), ""},
		{models.TypeDatetime, "2024-05-01T08:00:00+02:00", utc("2024-05-01T06:00:00Z"), ""},
		{models.TypeDatetime, "2024-05-01T08:00:00.123456Z", utc("2024-05-01T08:00:00.123Z"), ""},
		{models.TypeDatetime, "2024-05-01", utc("2024-04-30T16:00:00Z"), ""},
		{models.TypeDatetime, 1714521600250.0, utc("2024-05-01T00:00:00.25Z"), ""},
		{models.TypeDatetime, int64(1714521600250), utc("2024-05-01T00:00:00.25Z"), ""},
		{models.TypeDatetime, json.Number("1714521600250"), utc("2024-05-01T00:00:00.25Z"), ""},
		{models.TypeDatetime, time.Date(2024, 5, 1, 8, 0, 0, 999_999_999, loc), utc("2024-05-01T00:00:00.999Z"), ""},
		{models.TypeDatetime, "nope", nil, `got "nope" (a string); use "YYYY-MM-DD HH:mm:ss", ISO-8601 or epoch milliseconds`},
		{models.TypeDatetime, false, nil, "got false"},
		{models.TypeDatetime, map[string]any{}, nil, "got an object"},
		// JSON
		{models.TypeJSON, map[string]any{"a": 1, "b": []any{int64(2), "x", nil, true, 2.5}}, map[string]any{"a": int64(1), "b": []any{int64(2), "x", nil, true, 2.5}}, ""},
		{models.TypeJSON, map[string]any{"id": int64(9007199254740993), "n": json.Number("9007199254740993")}, map[string]any{"id": int64(9007199254740993), "n": int64(9007199254740993)}, ""},
		{models.TypeJSON, []string{"a", "b"}, []any{"a", "b"}, ""},
		{models.TypeJSON, map[string]int{"a": 1}, map[string]any{"a": int64(1)}, ""},
		{models.TypeJSON, struct {
			A int `json:"a"`
		}{A: 2}, map[string]any{"a": int64(2)}, ""},
		{models.TypeJSON, json.Number("1.25"), 1.25, ""},
		{models.TypeJSON, "text", "text", ""},
		{models.TypeJSON, map[string]any{"at": time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)}, map[string]any{"at": "2024-05-01 08:00:00"}, ""},
		{models.TypeJSON, map[string]any{"n": math.NaN()}, nil, "NaN"},
		{models.TypeJSON, []any{"a\x00"}, nil, "NUL"},
		{models.TypeJSON, make(chan int), nil, "not JSON"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/%T/%.40v", tc.typ, tc.in, tc.in), func(t *testing.T) {
			got, err := models.CoerceValue(models.Field{Name: "v", Type: tc.typ}, tc.in, loc)
			if tc.err != "" {
				require.ErrorIs(t, err, models.ErrInvalidValue)
				require.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			if tc.want != nil {
				require.Equal(t, tc.want, got)
			}
		})
	}
	for _, typ := range []string{models.TypeInteger, models.TypeNumeric, models.TypeStext, models.TypeLtext, models.TypeBoolean,
		models.TypeDate, models.TypeDatetime, models.TypeJSON} {
		got, err := models.CoerceValue(models.Field{Name: "v", Type: typ}, nil, loc)
		require.NoError(t, err, typ)
		require.Nil(t, got, "null is NULL in %s", typ)
	}
	got, err := models.CoerceValue(models.Field{Name: "v", Type: models.TypeDatetime}, "2024-05-01 08:00:00", nil)
	require.NoError(t, err)
	require.Equal(t, utc("2024-05-01T08:00:00Z"), got, "no location means UTC")
}

func TestCoerce(t *testing.T) {
	t.Parallel()
	loc := shanghai(t)
	s, err := models.SchemaOf("models.Order", fieldsDef(f("qty", "Integer"), f("title", "Stext"), f("due", "Datetime")))
	require.NoError(t, err)

	r, err := models.Coerce(s, map[string]any{"qty": 2.0, "title": nil}, loc, false)
	require.NoError(t, err)
	require.Equal(t, models.Row{"qty": int64(2), "title": nil}, r, "only the fields given; null kept as NULL")

	r, err = models.Coerce(s, map[string]any{"id": "not even a number", "qty": 1}, loc, true)
	require.NoError(t, err)
	require.Equal(t, models.Row{"qty": int64(1)}, r, "id ignored")

	r, err = models.Coerce(s, map[string]any{"id": 12.0}, loc, false)
	require.NoError(t, err)
	require.Equal(t, models.Row{"id": int64(12)}, r)
	r, err = models.Coerce(s, map[string]any{"id": nil, "qty": 1}, loc, false)
	require.NoError(t, err)
	require.Equal(t, models.Row{"qty": int64(1)}, r, "a null id means: assign one")
	for _, bad := range []any{"7", 0, -1, 1.5} {
		_, err = models.Coerce(s, map[string]any{"id": bad}, loc, false)
		require.ErrorIs(t, err, models.ErrInvalidValue, "id %v", bad)
	}

	_, err = models.Coerce(s, map[string]any{"colour": "red"}, loc, false)
	require.ErrorIs(t, err, models.ErrUnknownField)
	require.Contains(t, err.Error(), `model models.Order has no field "colour"; its fields are id, qty, title, due`)

	_, err = models.Coerce(s, map[string]any{"qty": "abc", "title": strings.Repeat("x", 300), "due": "soon", "zzz": 1}, loc, false)
	require.ErrorIs(t, err, models.ErrInvalidValue)
	require.ErrorIs(t, err, models.ErrUnknownField)
	msg := err.Error()
	for _, part := range []string{`field "qty" is Integer; got "abc" (a string)`, `field "title" is Stext`, `field "due" is Datetime`, `"zzz"`} {
		require.Contains(t, msg, part, "every problem at once")
	}
	require.Less(t, strings.Index(msg, `"due"`), strings.Index(msg, `"qty"`), "problems in field-name order")

	n, err := models.Normalize(s, models.Row{"qty": int64(3), "due": time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)})
	require.NoError(t, err)
	require.Equal(t, models.Row{"qty": int64(3), "due": time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}, n, "stored rows pass unchanged")
}

func TestPresent(t *testing.T) {
	t.Parallel()
	loc := shanghai(t)
	s, err := models.SchemaOf("models.Order", fieldsDef(f("qty", "Integer"), f("due", "Datetime"), f("day", "Date"), f("meta", "JSON"), f("ok", "Boolean")))
	require.NoError(t, err)
	got := models.Present(s, models.Row{
		"id": int64(5), "qty": int64(2), "due": time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC), "meta": map[string]any{"a": 1.0},
	}, loc)
	require.Equal(t, map[string]any{
		"id": int64(5), "qty": int64(2), "due": "2024-05-01 08:00:00", "day": nil, "meta": map[string]any{"a": 1.0}, "ok": nil,
	}, got)
	got = models.Present(s, models.Row{"id": 7, "qty": 3.0, "due": nil}, nil)
	require.Equal(t, int64(7), got["id"], "ints as int64")
	require.Equal(t, int64(3), got["qty"])
	require.Nil(t, got["due"])
	got = models.Present(s, models.Row{"due": time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)}, nil)
	require.Equal(t, "2024-05-01 00:00:00", got["due"], "no location means UTC")
}
