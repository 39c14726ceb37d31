package modelstest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/models"
)

// fruit is the small data set of the filter and orderBy tests; times are in the suite's
// Asia/Shanghai (UTC+8).
var fruit = []map[string]any{
	{"title": "apple", "qty": 1, "price": 1.5, "paid": true, "dueDate": "2024-01-10", "paidAt": "2024-01-10 08:00:00", "meta": map[string]any{"k": 1}, "notes": "Red fruit"},
	{"title": "Banana", "qty": 5, "price": 0.25, "paid": false, "dueDate": "2024-02-01", "notes": "yellow"},
	{"title": "cherry", "qty": 10, "price": 12.0, "paid": true, "paidAt": "2024-03-01 00:00:00", "meta": []any{1, 2}, "notes": "100% red_ish"},
	{"title": "date", "dueDate": "2024-01-31"},
	{"title": "Elder berry", "qty": 3, "price": 3.0, "paid": false, "dueDate": "2023-12-31", "paidAt": "2023-12-31 23:59:59", "meta": map[string]any{"k": 2}, "notes": "purple"},
	{"title": "fig", "qty": 7, "paid": true, "dueDate": "2024-02-29", "paidAt": "2024-02-29 12:00:00", "notes": "ünïcödé"},
}

// loadFruit stores the fruit in a fresh model and returns its schema and each title's id.
func (b *bundle) loadFruit(t *testing.T) (models.Schema, map[string]int64) {
	t.Helper()
	s := b.ensured(t, b.model)
	byTitle := map[string]int64{}
	for _, f := range fruit {
		r := b.insert(t, s, f)
		byTitle[r["title"].(string)] = r["id"].(int64)
	}
	return s, byTitle
}

// titles runs q and returns the titles of the page, in order.
func (b *bundle) titles(t *testing.T, s models.Schema, q models.Query) []string {
	t.Helper()
	if q.PageSize == 0 {
		q.PageSize = 100
	}
	if q.Location == nil {
		q.Location = b.loc
	}
	p, err := b.st.Query(b.ctx, s, q)
	require.NoError(t, err, "filter %v", q.Filter)
	out := make([]string, len(p.Rows))
	for i, r := range p.Rows {
		out[i], _ = r["title"].(string)
	}
	require.EqualValues(t, len(out), p.TotalCount, "totalCount of a single page")
	return out
}

func testFilters(t *testing.T, b *bundle) {
	s, id := b.loadFruit(t)
	shanghai := func(s string) int64 {
		tm, err := time.ParseInLocation("2006-01-02 15:04:05", s, b.loc)
		require.NoError(t, err)
		return tm.UnixMilli()
	}
	cases := []struct {
		filter map[string]any
		want   []string
	}{
		{nil, []string{"apple", "Banana", "cherry", "date", "Elder berry", "fig"}},
		{map[string]any{}, []string{"apple", "Banana", "cherry", "date", "Elder berry", "fig"}},
		{map[string]any{"title": "apple"}, []string{"apple"}},
		{map[string]any{"title": "APPLE"}, nil}, // equality is exact
		{map[string]any{"qty": map[string]any{"eq": 5}}, []string{"Banana"}},
		{map[string]any{"qty": map[string]any{"ne": 5}}, []string{"apple", "cherry", "date", "Elder berry", "fig"}},
		{map[string]any{"qty": map[string]any{"gt": 3}}, []string{"Banana", "cherry", "fig"}},
		{map[string]any{"qty": map[string]any{"gte": 5}}, []string{"Banana", "cherry", "fig"}},
		{map[string]any{"qty": map[string]any{"lt": 5}}, []string{"apple", "Elder berry"}},
		{map[string]any{"qty": map[string]any{"lte": 5}}, []string{"apple", "Banana", "Elder berry"}},
		{map[string]any{"qty": map[string]any{"gt": 1, "lt": 10}}, []string{"Banana", "Elder berry", "fig"}},
		{map[string]any{"qty": map[string]any{"in": []any{1, 10, 99}}}, []string{"apple", "cherry"}},
		{map[string]any{"qty": map[string]any{"in": []any{1, nil}}}, []string{"apple", "date"}},
		{map[string]any{"qty": map[string]any{"in": []any{nil}}}, []string{"date"}},
		{map[string]any{"qty": map[string]any{"in": []any{}}}, nil},
		{map[string]any{"qty": map[string]any{"nin": []any{1, 10}}}, []string{"Banana", "date", "Elder berry", "fig"}},
		{map[string]any{"qty": map[string]any{"nin": []any{1, nil}}}, []string{"Banana", "cherry", "Elder berry", "fig"}},
		{map[string]any{"qty": map[string]any{"nin": []any{}}}, []string{"apple", "Banana", "cherry", "date", "Elder berry", "fig"}},
		{map[string]any{"qty": nil}, []string{"date"}},
		{map[string]any{"qty": map[string]any{"eq": nil}}, []string{"date"}},
		{map[string]any{"qty": map[string]any{"ne": nil}}, []string{"apple", "Banana", "cherry", "Elder berry", "fig"}},
		{map[string]any{"qty": map[string]any{"isNull": true}}, []string{"date"}},
		{map[string]any{"qty": map[string]any{"isNull": false}}, []string{"apple", "Banana", "cherry", "Elder berry", "fig"}},
		{map[string]any{"price": map[string]any{"gt": 1}}, []string{"apple", "cherry", "Elder berry"}},
		{map[string]any{"price": map[string]any{"lte": 0.25}}, []string{"Banana"}},
		{map[string]any{"paid": true}, []string{"apple", "cherry", "fig"}},
		{map[string]any{"paid": false}, []string{"Banana", "Elder berry"}},
		{map[string]any{"paid": map[string]any{"ne": true}}, []string{"Banana", "date", "Elder berry"}},
		{map[string]any{"paid": map[string]any{"in": []any{false, nil}}}, []string{"Banana", "date", "Elder berry"}},
		{map[string]any{"dueDate": map[string]any{"gte": "2024-01-31", "lt": "2024-02-29"}}, []string{"Banana", "date"}},
		{map[string]any{"dueDate": map[string]any{"lt": "2024-01-01"}}, []string{"Elder berry"}},
		{map[string]any{"dueDate": "2024-02-29"}, []string{"fig"}},
		{map[string]any{"dueDate": map[string]any{"in": []any{"2024-02-29", "2023-12-31"}}}, []string{"Elder berry", "fig"}},
		{map[string]any{"paidAt": map[string]any{"gte": "2024-01-10 08:00:00"}}, []string{"apple", "cherry", "fig"}},
		{map[string]any{"paidAt": map[string]any{"gt": "2024-01-10 08:00:00"}}, []string{"cherry", "fig"}},
		{map[string]any{"paidAt": map[string]any{"lt": "2024-01-10T00:00:01Z"}}, []string{"apple", "Elder berry"}},
		{map[string]any{"paidAt": map[string]any{"gt": shanghai("2024-02-01 00:00:00")}}, []string{"cherry", "fig"}},
		{map[string]any{"paidAt": "2024-02-29 12:00:00"}, []string{"fig"}},
		{map[string]any{"paidAt": nil}, []string{"Banana", "date"}},
		{map[string]any{"title": map[string]any{"like": "%an%"}}, []string{"Banana"}},
		{map[string]any{"title": map[string]any{"like": "b%"}}, []string{"Banana"}},
		{map[string]any{"title": map[string]any{"like": "_ig"}}, []string{"fig"}},
		{map[string]any{"title": map[string]any{"like": "%E%"}}, []string{"apple", "cherry", "date", "Elder berry"}},
		{map[string]any{"notes": map[string]any{"like": "%red%"}}, []string{"apple", "cherry"}},
		{map[string]any{"notes": map[string]any{"like": `100\%%`}}, []string{"cherry"}},
		{map[string]any{"notes": map[string]any{"like": `%\_%`}}, []string{"cherry"}},
		{map[string]any{"notes": map[string]any{"like": "ünï%"}}, []string{"fig"}},
		{map[string]any{"notes": map[string]any{"like": "%"}}, []string{"apple", "Banana", "cherry", "Elder berry", "fig"}},
		{map[string]any{"meta": nil}, []string{"Banana", "date", "fig"}},
		{map[string]any{"meta": map[string]any{"isNull": false}}, []string{"apple", "cherry", "Elder berry"}},
		{map[string]any{"or": []any{map[string]any{"qty": 1}, map[string]any{"title": "fig"}}}, []string{"apple", "fig"}},
		{map[string]any{
			"or":    []any{map[string]any{"qty": map[string]any{"gt": 5}}, map[string]any{"paid": false}},
			"price": map[string]any{"gt": 1},
		}, []string{"cherry", "Elder berry"}},
		{map[string]any{"and": []any{map[string]any{"qty": map[string]any{"gt": 1}}, map[string]any{"qty": map[string]any{"lt": 7}}}}, []string{"Banana", "Elder berry"}},
		{map[string]any{"or": []any{
			map[string]any{"or": []any{map[string]any{"title": "apple"}}},
			map[string]any{"and": []any{map[string]any{"paid": true}, map[string]any{"qty": 10}}},
		}}, []string{"apple", "cherry"}},
		{map[string]any{"or": []any{map[string]any{"qty": nil}, map[string]any{"meta": nil, "paid": true}}}, []string{"date", "fig"}},
		{map[string]any{"id": map[string]any{"in": []any{id["apple"], float64(id["Banana"])}}}, []string{"apple", "Banana"}},
		{map[string]any{"id": id["fig"]}, []string{"fig"}},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.filter), func(t *testing.T) {
			got := b.titles(t, s, models.Query{Filter: tc.filter})
			want := tc.want
			if want == nil {
				want = []string{}
			}
			require.Equal(t, want, got, "filter %v", tc.filter)
		})
	}
}

func testFilterErrors(t *testing.T, b *bundle) {
	s, _ := b.loadFruit(t)
	cases := []struct {
		filter map[string]any
		want   error
		says   string
	}{
		{map[string]any{"nope": 1}, models.ErrUnknownField, `"nope"`},
		{map[string]any{"or": []any{map[string]any{"nope": 1}}}, models.ErrUnknownField, `"nope"`},
		{map[string]any{"qty": "abc"}, models.ErrInvalidValue, `field "qty" is Integer; got "abc" (a string)`},
		{map[string]any{"qty": map[string]any{"gt": 1.5}}, models.ErrInvalidValue, "qty"},
		{map[string]any{"qty": map[string]any{"gt": 1, "lt": "x"}}, models.ErrInvalidValue, `"x"`},
		{map[string]any{"qty": map[string]any{"between": []any{1, 2}}}, models.ErrInvalidValue, "between"},
		{map[string]any{"qty": map[string]any{}}, models.ErrInvalidValue, "qty"},
		{map[string]any{"qty": map[string]any{"in": 3}}, models.ErrInvalidValue, "list"},
		{map[string]any{"qty": map[string]any{"in": []any{1, "two"}}}, models.ErrInvalidValue, `"two"`},
		{map[string]any{"qty": map[string]any{"gt": nil}}, models.ErrInvalidValue, "isNull"},
		{map[string]any{"qty": map[string]any{"like": "1%"}}, models.ErrInvalidValue, "like"},
		{map[string]any{"title": map[string]any{"like": 1}}, models.ErrInvalidValue, "like"},
		{map[string]any{"qty": map[string]any{"isNull": "yes"}}, models.ErrInvalidValue, "isNull"},
		{map[string]any{"paid": map[string]any{"gt": true}}, models.ErrInvalidValue, "paid"},
		{map[string]any{"paid": "true"}, models.ErrInvalidValue, "paid"},
		{map[string]any{"meta": map[string]any{"k": 1}}, models.ErrInvalidValue, "isNull"},
		{map[string]any{"meta": map[string]any{"eq": "x"}}, models.ErrInvalidValue, "isNull"},
		{map[string]any{"paidAt": map[string]any{"gt": "tomorrow"}}, models.ErrInvalidValue, "paidAt"},
		{map[string]any{"dueDate": map[string]any{"gt": "2024-02-30"}}, models.ErrInvalidValue, "dueDate"},
		{map[string]any{"or": map[string]any{"qty": 1}}, models.ErrInvalidValue, "or"},
		{map[string]any{"or": []any{}}, models.ErrInvalidValue, "or"},
		{map[string]any{"or": []any{"qty"}}, models.ErrInvalidValue, "or"},
	}
	for _, tc := range cases {
		_, err := b.st.Query(b.ctx, s, models.Query{Filter: tc.filter, Location: b.loc})
		require.ErrorIs(t, err, tc.want, "filter %v", tc.filter)
		require.Contains(t, err.Error(), tc.says, "filter %v", tc.filter)
	}
	// Every problem at once.
	_, err := b.st.Query(b.ctx, s, models.Query{Filter: map[string]any{"nope": 1, "qty": "abc"}, OrderBy: "zzz", PageSize: 5000})
	require.ErrorIs(t, err, models.ErrUnknownField)
	require.ErrorIs(t, err, models.ErrInvalidValue)
	for _, part := range []string{`"nope"`, `"abc"`, `"zzz"`, "5000"} {
		require.Contains(t, err.Error(), part)
	}
}

func testOrderBy(t *testing.T, b *bundle) {
	s, _ := b.loadFruit(t)
	all := []string{"apple", "Banana", "cherry", "date", "Elder berry", "fig"}
	cases := []struct {
		orderBy string
		want    []string
	}{
		{"", all},
		{"id", all},
		{"-id", []string{"fig", "Elder berry", "date", "cherry", "Banana", "apple"}},
		{"qty", []string{"date", "apple", "Elder berry", "Banana", "fig", "cherry"}},  // NULL first
		{"-qty", []string{"cherry", "fig", "Banana", "Elder berry", "apple", "date"}}, // NULL last
		{" +qty ", []string{"date", "apple", "Elder berry", "Banana", "fig", "cherry"}},
		{"paid,-qty", []string{"date", "Banana", "Elder berry", "cherry", "fig", "apple"}},
		{"-paid,qty", []string{"apple", "fig", "cherry", "Elder berry", "Banana", "date"}},
		{"-dueDate,id", []string{"fig", "Banana", "date", "apple", "Elder berry", "cherry"}},
		{"price,-id", []string{"fig", "date", "Banana", "apple", "Elder berry", "cherry"}},
		{"paidAt", []string{"Banana", "date", "Elder berry", "apple", "fig", "cherry"}},
		{"-paidAt", []string{"cherry", "fig", "apple", "Elder berry", "Banana", "date"}}, // NULL ties by id
		{"-paidAt,-id", []string{"cherry", "fig", "apple", "Elder berry", "date", "Banana"}},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, b.titles(t, s, models.Query{OrderBy: tc.orderBy}), "orderBy %q", tc.orderBy)
	}
	// Ties in the first key are broken by id, ascending unless asked otherwise.
	require.Equal(t, []string{"apple", "cherry", "fig"}, b.titles(t, s, models.Query{Filter: map[string]any{"paid": true}, OrderBy: "paid"}))
	require.Equal(t, []string{"Banana", "date"}, b.titles(t, s, models.Query{Filter: map[string]any{"paidAt": nil}, OrderBy: "paidAt"}))

	for _, bad := range []struct {
		orderBy string
		want    error
	}{
		{"nope", models.ErrUnknownField},
		{"-nope,qty", models.ErrUnknownField},
		{"qty,,id", models.ErrInvalidValue},
		{"-", models.ErrInvalidValue},
		{"meta", models.ErrInvalidValue},
		{"qty,-qty", models.ErrInvalidValue},
		{"qty; DROP TABLE x", models.ErrUnknownField},
	} {
		_, err := b.st.Query(b.ctx, s, models.Query{OrderBy: bad.orderBy})
		require.ErrorIs(t, err, bad.want, "orderBy %q", bad.orderBy)
	}
}

func testPaging(t *testing.T, b *bundle) {
	s := b.ensured(t, b.model)
	const n = 45
	rows := make([]models.Row, n)
	for i := range rows {
		rows[i] = models.Row{"qty": int64(i + 1)}
	}
	stored, err := b.st.InsertMany(b.ctx, s, rows)
	require.NoError(t, err)

	page := func(q models.Query) models.Page {
		t.Helper()
		p, err := b.st.Query(b.ctx, s, q)
		require.NoError(t, err)
		return p
	}
	p := page(models.Query{})
	require.EqualValues(t, n, p.TotalCount)
	require.Len(t, p.Rows, models.DefaultPageSize, "pageSize defaults to 20")
	require.Equal(t, ids(stored[:20]), ids(p.Rows), "page 1 is the first rows by id")

	var walked []int64
	for pg := 1; pg <= 3; pg++ {
		p := page(models.Query{Page: pg, PageSize: 20, OrderBy: "-qty"})
		require.EqualValues(t, n, p.TotalCount, "page %d", pg)
		walked = append(walked, ids(p.Rows)...)
		if pg == 3 {
			require.Len(t, p.Rows, 5, "the last page is partial")
		}
	}
	want := ids(stored)
	for i, j := 0, len(want)-1; i < j; i, j = i+1, j-1 {
		want[i], want[j] = want[j], want[i]
	}
	require.Equal(t, want, walked, "pages cover every row once, in order")

	p = page(models.Query{Page: 4, PageSize: 20})
	require.EqualValues(t, n, p.TotalCount, "past the end: no rows, but the count")
	require.Empty(t, p.Rows)
	require.NotNil(t, p.Rows)

	p = page(models.Query{Filter: map[string]any{"qty": map[string]any{"gte": 10}}, Page: 2, PageSize: 30})
	require.EqualValues(t, 36, p.TotalCount, "the count is of matching rows")
	require.Len(t, p.Rows, 6)
	require.Equal(t, int64(40), p.Rows[0]["qty"])

	p = page(models.Query{PageSize: models.MaxPageSize})
	require.Len(t, p.Rows, n)
	_, err = b.st.Query(b.ctx, s, models.Query{PageSize: models.MaxPageSize + 1})
	require.ErrorIs(t, err, models.ErrInvalidValue)
	_, err = b.st.Query(b.ctx, s, models.Query{Page: -1})
	require.ErrorIs(t, err, models.ErrInvalidValue)
	_, err = b.st.Query(b.ctx, s, models.Query{PageSize: -5})
	require.ErrorIs(t, err, models.ErrInvalidValue)
}
