package models_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/models"
)

func querySchema(t *testing.T) models.Schema {
	t.Helper()
	s, err := models.SchemaOf("models.Order", fieldsDef(f("qty", "Integer"), f("title", "Stext"), f("due", "Datetime"),
		f("meta", "JSON"), f("paid", "Boolean")))
	require.NoError(t, err)
	return s
}

func TestPlanQueryPaging(t *testing.T) {
	t.Parallel()
	s := querySchema(t)
	cases := []struct {
		q             models.Query
		limit, offset int
		err           string
	}{
		{models.Query{}, 20, 0, ""},
		{models.Query{Page: 3, PageSize: 10}, 10, 20, ""},
		{models.Query{Page: 1, PageSize: 1000}, 1000, 0, ""},
		{models.Query{PageSize: 1001}, 0, 0, "pageSize is 1001; give 1 to 1000"},
		{models.Query{PageSize: -1}, 0, 0, "pageSize is -1"},
		{models.Query{Page: -2}, 0, 0, "page is -2; pages count from 1"},
		// (page-1)×pageSize would wrap around to the first page.
		{models.Query{Page: math.MaxInt64 - 1}, 0, 0, "page 9223372036854775806 is past any row"},
		{models.Query{Page: models.MaxOffset/1000 + 2, PageSize: 1000}, 0, 0, "page must be at most 1099511628"},
		{models.Query{Page: models.MaxOffset/1000 + 1, PageSize: 1000}, 1000, models.MaxOffset / 1000 * 1000, ""},
	}
	for _, tc := range cases {
		p, err := models.PlanQuery(s, tc.q)
		if tc.err != "" {
			require.ErrorIs(t, err, models.ErrInvalidValue)
			require.Contains(t, err.Error(), tc.err)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.limit, p.Limit, "%+v", tc.q)
		require.Equal(t, tc.offset, p.Offset, "%+v", tc.q)
	}
}

func TestParseOrderBy(t *testing.T) {
	t.Parallel()
	s := querySchema(t)
	type key struct {
		name string
		desc bool
	}
	cases := []struct {
		in   string
		want []key
		err  error
	}{
		{"", []key{{"id", false}}, nil},
		{"  ", []key{{"id", false}}, nil},
		{"qty", []key{{"qty", false}, {"id", false}}, nil},
		{"-due, id", []key{{"due", true}, {"id", false}}, nil},
		{"-id", []key{{"id", true}}, nil},
		{"paid,-qty,+title", []key{{"paid", false}, {"qty", true}, {"title", false}, {"id", false}}, nil},
		{"nope", nil, models.ErrUnknownField},
		{"Qty", nil, models.ErrUnknownField},
		{"qty,", nil, models.ErrInvalidValue},
		{"-", nil, models.ErrInvalidValue},
		{"meta", nil, models.ErrInvalidValue},
		{"qty,-qty", nil, models.ErrInvalidValue},
	}
	for _, tc := range cases {
		got, err := models.ParseOrderBy(s, tc.in)
		if tc.err != nil {
			require.ErrorIs(t, err, tc.err, "%q", tc.in)
			continue
		}
		require.NoError(t, err, "%q", tc.in)
		var keys []key
		for _, o := range got {
			keys = append(keys, key{o.Field.Name, o.Desc})
		}
		require.Equal(t, tc.want, keys, "%q", tc.in)
	}
}

func TestParseFilter(t *testing.T) {
	t.Parallel()
	s := querySchema(t)
	loc := shanghai(t)
	qty, _ := s.Field("qty")
	due, _ := s.Field("due")
	meta, _ := s.Field("meta")
	title, _ := s.Field("title")

	c, err := models.ParseFilter(s, map[string]any{
		"qty":   map[string]any{"gt": 1.0, "in": []any{2.0, nil}},
		"due":   "2024-05-01 08:00:00",
		"meta":  nil,
		"title": map[string]any{"ne": nil},
		"or":    []any{map[string]any{"paid": true}, map[string]any{"qty": map[string]any{"isNull": true}}},
	}, loc)
	require.NoError(t, err)
	paid, _ := s.Field("paid")
	require.Equal(t, models.Cond{Op: models.OpAnd, Terms: []models.Cond{
		{Op: models.OpEq, Field: due, Value: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)}, // read in loc, stored UTC
		{Op: models.OpIsNull, Field: meta, Value: true},
		{Op: models.OpOr, Terms: []models.Cond{
			{Op: models.OpAnd, Terms: []models.Cond{{Op: models.OpEq, Field: paid, Value: true}}},
			{Op: models.OpAnd, Terms: []models.Cond{{Op: models.OpIsNull, Field: qty, Value: true}}},
		}},
		{Op: models.OpGt, Field: qty, Value: int64(1)},
		{Op: models.OpIn, Field: qty, Value: []any{int64(2), nil}},
		{Op: models.OpIsNull, Field: title, Value: false},
	}}, c)

	empty, err := models.ParseFilter(s, nil, nil)
	require.NoError(t, err)
	require.Equal(t, models.Cond{Op: models.OpAnd}, empty, "no filter matches everything")

	_, err = models.ParseFilter(s, map[string]any{"qty": map[string]any{"in": make([]any, models.MaxInValues+1)}}, nil)
	require.ErrorIs(t, err, models.ErrInvalidValue)
	require.Contains(t, err.Error(), "at most 1000")

	deep := map[string]any{"qty": 1.0}
	for range 40 {
		deep = map[string]any{"or": []any{deep}}
	}
	_, err = models.ParseFilter(s, deep, nil)
	require.ErrorIs(t, err, models.ErrInvalidValue)
	require.Contains(t, err.Error(), "nested")

	_, err = models.ParseFilter(s, map[string]any{
		"nope": 1, "qty": map[string]any{"gt": "x", "zz": 1}, "meta": map[string]any{"a": 1}, "or": []any{map[string]any{"title": 5}},
	}, nil)
	require.ErrorIs(t, err, models.ErrUnknownField)
	require.ErrorIs(t, err, models.ErrInvalidValue)
	for _, part := range []string{`"nope"`, `got "x"`, `unknown operator "zz"`, `field "meta" is JSON`, `filter.or[0]: models: invalid value: field "title" is Stext; got 5 (a number)`} {
		require.Contains(t, err.Error(), part, "every problem at once, with where it is")
	}
}
