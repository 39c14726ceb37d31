package modelstest

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/models"
)

func testRoundTrip(t *testing.T, b *bundle) {
	s := b.ensured(t, b.model)
	cases := []struct {
		name string
		in   map[string]any
	}{
		{"typical", map[string]any{
			"title": "Order 1", "notes": "line one\nline two", "qty": 3, "price": 19.99, "paid": true,
			"dueDate": "2024-05-01", "paidAt": "2024-05-01 08:30:15", "meta": map[string]any{"tags": []any{"a", "b"}, "n": 1},
		}},
		{"all null", map[string]any{
			"title": nil, "notes": nil, "qty": nil, "price": nil, "paid": nil, "dueDate": nil, "paidAt": nil, "meta": nil,
		}},
		{"nothing given", map[string]any{}},
		{"unicode", map[string]any{
			"title": "注文 №1 — café 😀", "notes": strings.Repeat("Ünïcødé 日本語 🎉 ", 2000), "meta": map[string]any{"ключ": "значение", "emoji": "🙂"},
		}},
		{"extremes", map[string]any{
			"title": strings.Repeat("😀", models.StextMaxLen), "qty": int64(math.MaxInt64), "price": math.MaxFloat64,
			"paid": false, "dueDate": "0001-01-01", "paidAt": "1969-07-20T20:17:40.123Z", "meta": []any{},
		}},
		{"other extremes", map[string]any{
			"title": "", "notes": "", "qty": int64(math.MinInt64), "price": -5e-324, "dueDate": "9999-12-31",
			"paidAt": int64(253402300799999), "meta": map[string]any{},
		}},
		{"nested JSON", map[string]any{"meta": map[string]any{
			"a":          []any{1.5, "x", map[string]any{"b": nil, "c": true, "d": []any{[]any{}, map[string]any{"deep": []any{1, 2, 3}}}}},
			"quote\"key": "value with \"quotes\" and \\ and '", "empty": "",
		}}},
		{"JSON scalars: string", map[string]any{"meta": "just a string"}},
		{"JSON scalars: number", map[string]any{"meta": -12.5}},
		{"JSON integers past 2^53 stay exact", map[string]any{"meta": map[string]any{"orderId": int64(9007199254740993),
			"ids": []any{int64(-9007199254740993), int64(math.MaxInt64)}}}},
		{"JSON scalars: false", map[string]any{"meta": false}},
		{"JSON string that looks like JSON", map[string]any{"meta": `{"not": "an object"}`}},
		{"zero values", map[string]any{"qty": 0, "price": 0.0, "paid": false}},
		{"datetime forms", map[string]any{"paidAt": time.Date(2024, 2, 29, 23, 59, 59, 999_999_999, time.UTC), "dueDate": "2024-02-29 23:30:00"}},
		{"quotes and SQL in text", map[string]any{"title": `Robert'); DROP TABLE x;--`, "notes": `"'\` + "\t\r"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := b.row(t, s, tc.in)
			stored, err := b.st.Insert(b.ctx, s, in)
			require.NoError(t, err)
			id, ok := stored[models.IDField].(int64)
			require.True(t, ok, "id is %T", stored[models.IDField])
			require.Positive(t, id)
			want := full(s, in, id)
			requireRow(t, want, stored, "Insert's answer")
			got, err := b.st.Get(b.ctx, s, id)
			require.NoError(t, err)
			requireRow(t, want, got, "Get")
		})
	}
	// Values the suite checks by hand, so a store and Coerce cannot agree on a wrong reading.
	r := b.insert(t, s, map[string]any{"paidAt": "2024-05-01 08:30:15.5", "dueDate": "2024-05-01T23:30:00Z"})
	got, err := b.st.Get(b.ctx, s, r[models.IDField].(int64))
	require.NoError(t, err)
	require.True(t, time.Date(2024, 5, 1, 0, 30, 15, 500_000_000, time.UTC).Equal(got["paidAt"].(time.Time)), "Shanghai is UTC+8: %v", got["paidAt"])
	require.Equal(t, "2024-05-02", got["dueDate"], "23:30 UTC is the next day in Shanghai")
	shown := models.Present(s, got, b.loc)
	require.Equal(t, "2024-05-01 08:30:15", shown["paidAt"])
	require.Nil(t, shown["title"])
	require.Contains(t, shown, "meta")
	// By hand too: an id inside a JSON field is read back as the same int64, not a float.
	r = b.insert(t, s, map[string]any{"meta": map[string]any{"orderId": int64(9007199254740993)}})
	got, err = b.st.Get(b.ctx, s, r[models.IDField].(int64))
	require.NoError(t, err)
	require.Equal(t, map[string]any{"orderId": int64(9007199254740993)}, got["meta"])
}

func testCRUD(t *testing.T, b *bundle) {
	s := b.ensured(t, b.model)
	first := b.insert(t, s, map[string]any{"title": "first", "qty": 1, "notes": "keep me", "meta": map[string]any{"v": 1}})
	second := b.insert(t, s, map[string]any{"title": "second", "qty": 2})
	id1, id2 := first["id"].(int64), second["id"].(int64)
	require.Greater(t, id2, id1, "ids grow")

	got, err := b.st.Get(b.ctx, s, id1)
	require.NoError(t, err)
	requireRow(t, first, got)

	patch := b.row(t, s, map[string]any{"qty": 5, "notes": nil, "paidAt": "2024-01-02 03:04:05"})
	prev, post, err := b.st.Update(b.ctx, s, id1, patch)
	require.NoError(t, err)
	requireRow(t, first, prev, "prev is the row before")
	want := models.Row{}
	for k, v := range first {
		want[k] = v
	}
	want["qty"], want["notes"], want["paidAt"] = int64(5), nil, patch["paidAt"]
	requireRow(t, want, post, "post has the patch applied and the rest kept")
	got, err = b.st.Get(b.ctx, s, id1)
	require.NoError(t, err)
	requireRow(t, post, got)

	prev, post, err = b.st.Update(b.ctx, s, id1, models.Row{})
	require.NoError(t, err, "an empty patch changes nothing")
	requireRow(t, got, prev)
	requireRow(t, got, post)

	_, _, err = b.st.Update(b.ctx, s, id1, models.Row{"id": id2, "qty": int64(9)})
	require.ErrorIs(t, err, models.ErrInvalidValue, "an id cannot change")
	_, _, err = b.st.Update(b.ctx, s, id1, models.Row{"id": id1, "qty": int64(9)})
	require.NoError(t, err, "the row's own id in a patch is harmless")

	other, err := b.st.Get(b.ctx, s, id2)
	require.NoError(t, err)
	requireRow(t, second, other, "other rows are untouched")

	deleted, err := b.st.Delete(b.ctx, s, id2)
	require.NoError(t, err)
	requireRow(t, second, deleted, "Delete returns the row as it was")
	_, err = b.st.Get(b.ctx, s, id2)
	require.ErrorIs(t, err, models.ErrNotFound)
	require.EqualValues(t, 1, b.count(t, s))
}

func testNotFound(t *testing.T, b *bundle) {
	s := b.ensured(t, b.model)
	_, err := b.st.Get(b.ctx, s, 424242)
	require.ErrorIs(t, err, models.ErrNotFound)
	require.Contains(t, err.Error(), "424242")
	_, _, err = b.st.Update(b.ctx, s, 424242, models.Row{"qty": int64(1)})
	require.ErrorIs(t, err, models.ErrNotFound)
	_, _, err = b.st.Update(b.ctx, s, 424242, models.Row{})
	require.ErrorIs(t, err, models.ErrNotFound, "even with an empty patch")
	_, err = b.st.Delete(b.ctx, s, 424242)
	require.ErrorIs(t, err, models.ErrNotFound)
	require.Zero(t, b.count(t, s), "Update of a missing row inserts nothing")
}

func testIDsNeverReused(t *testing.T, b *bundle) {
	s := b.ensured(t, b.model)
	a := b.insert(t, s, map[string]any{"qty": 1})
	c := b.insert(t, s, map[string]any{"qty": 2})
	_, err := b.st.Delete(b.ctx, s, c["id"].(int64))
	require.NoError(t, err)
	d := b.insert(t, s, map[string]any{"qty": 3})
	require.Greater(t, d["id"].(int64), c["id"].(int64), "the deleted largest id is not handed out again")
	require.Greater(t, c["id"].(int64), a["id"].(int64))
}

func testExplicitIDs(t *testing.T, b *bundle) {
	s := b.ensured(t, b.model)
	r, err := b.st.Insert(b.ctx, s, b.row(t, s, map[string]any{"id": 1000, "qty": 1}))
	require.NoError(t, err)
	require.Equal(t, int64(1000), r["id"], "an imported id is kept")
	next := b.insert(t, s, map[string]any{"qty": 2})
	require.Greater(t, next["id"].(int64), int64(1000), "later ids come after imported ones")
	_, err = b.st.Insert(b.ctx, s, models.Row{"id": int64(1000), "qty": int64(3)})
	require.ErrorIs(t, err, models.ErrInvalidValue, "an id already taken")
	require.Contains(t, err.Error(), "1000")
	rows, err := b.st.InsertMany(b.ctx, s, []models.Row{{"id": int64(5000)}, {"qty": int64(4)}, {"id": int64(4000)}})
	require.NoError(t, err)
	require.Equal(t, int64(5000), rows[0]["id"])
	require.Equal(t, int64(4000), rows[2]["id"])
	require.NotContains(t, []int64{1000, 4000, 5000}, rows[1]["id"])
	last := b.insert(t, s, map[string]any{"qty": 5})
	require.Greater(t, last["id"].(int64), int64(5000))
	require.EqualValues(t, 6, b.count(t, s))
}

func testConcurrentInserts(t *testing.T, b *bundle) {
	s := b.ensured(t, b.model)
	const workers, each = 8, 25
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				r, err := b.st.Insert(b.ctx, s, models.Row{"qty": int64(w*each + i)})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				seen[r["id"].(int64)] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, seen, workers*each, "every insert got its own id")
	require.EqualValues(t, workers*each, b.count(t, s))
	// Every value arrived exactly once.
	p, err := b.st.Query(b.ctx, s, models.Query{OrderBy: "qty", PageSize: workers * each})
	require.NoError(t, err)
	for i, r := range p.Rows {
		require.Equal(t, int64(i), r["qty"])
	}
}

func testInsertMany(t *testing.T, b *bundle) {
	s := b.ensured(t, b.model)
	out, err := b.st.InsertMany(b.ctx, s, nil)
	require.NoError(t, err)
	require.Empty(t, out)

	const n = 2000
	in := make([]models.Row, n)
	for i := range in {
		in[i] = b.row(t, s, map[string]any{
			"title": "row", "qty": i, "price": float64(i) / 4, "paid": i%2 == 0,
			"dueDate": "2024-01-01", "paidAt": int64(1700000000000 + i), "meta": map[string]any{"i": i},
		})
	}
	in[10]["title"] = nil
	out, err = b.st.InsertMany(b.ctx, s, in)
	require.NoError(t, err)
	require.Len(t, out, n)
	seen := map[int64]bool{}
	for i, r := range out {
		id := r["id"].(int64)
		require.False(t, seen[id], "id %d twice", id)
		seen[id] = true
		requireRow(t, full(s, in[i], id), r, "row %d comes back in the order given", i)
	}
	require.EqualValues(t, n, b.count(t, s))
	got, err := b.st.Get(b.ctx, s, out[1234]["id"].(int64))
	require.NoError(t, err)
	requireRow(t, out[1234], got)
}

func testBadValueStoresNothing(t *testing.T, b *bundle) {
	s := b.ensured(t, b.model)
	taken := b.insert(t, s, map[string]any{"id": 777, "title": "already here"})
	good := func(i int) models.Row { return models.Row{"qty": int64(i), "title": "ok"} }
	batch := func(bad models.Row) []models.Row {
		rows := make([]models.Row, 10)
		for i := range rows {
			rows[i] = good(i)
		}
		rows[7] = bad
		return rows
	}
	twice := batch(models.Row{"id": int64(888)})
	twice[2] = models.Row{"id": int64(888)}
	cases := []struct {
		name string
		rows []models.Row
		want error
	}{
		{"string in Integer", batch(models.Row{"qty": "abc"}), models.ErrInvalidValue},
		{"fraction in Integer", batch(models.Row{"qty": 1.5}), models.ErrInvalidValue},
		{"Stext too long", batch(models.Row{"title": strings.Repeat("x", models.StextMaxLen+1)}), models.ErrInvalidValue},
		{"unknown field", batch(models.Row{"colour": "red"}), models.ErrUnknownField},
		{"bad date", batch(models.Row{"dueDate": "2024-13-45"}), models.ErrInvalidValue},
		{"NUL in text", batch(models.Row{"notes": "a\x00b"}), models.ErrInvalidValue},
		// The database itself refuses these, half way through the transaction.
		{"id already stored", batch(models.Row{"id": int64(777)}), models.ErrInvalidValue},
		{"id twice in the batch", twice, models.ErrInvalidValue},
	}
	for _, tc := range cases {
		_, err := b.st.InsertMany(b.ctx, s, tc.rows)
		require.ErrorIs(t, err, tc.want, tc.name)
		require.Contains(t, err.Error(), "row 7", "%s: the error names the row", tc.name)
		require.EqualValues(t, 1, b.count(t, s), "%s: nothing stored", tc.name)
		if tc.name == "id twice in the batch" {
			continue // alone, the row is fine
		}
		_, err = b.st.Insert(b.ctx, s, tc.rows[7])
		require.ErrorIs(t, err, tc.want, tc.name)
		require.EqualValues(t, 1, b.count(t, s), "%s: nothing stored", tc.name)
	}
	got, err := b.st.Get(b.ctx, s, 777)
	require.NoError(t, err)
	requireRow(t, taken, got, "the row whose id was reused is untouched")

	// A failed update leaves the row as it was.
	r := b.insert(t, s, map[string]any{"qty": 1, "title": "before"})
	_, _, err = b.st.Update(b.ctx, s, r["id"].(int64), models.Row{"title": "after", "qty": "many"})
	require.ErrorIs(t, err, models.ErrInvalidValue)
	got, err = b.st.Get(b.ctx, s, r["id"].(int64))
	require.NoError(t, err)
	requireRow(t, r, got)
	_, _, err = b.st.Update(b.ctx, s, r["id"].(int64), models.Row{"title": "after", "nope": 1})
	require.ErrorIs(t, err, models.ErrUnknownField)
	got, err = b.st.Get(b.ctx, s, r["id"].(int64))
	require.NoError(t, err)
	requireRow(t, r, got)
}

func testCanceledContext(t *testing.T, b *bundle) {
	s := b.ensured(t, b.model)
	ctx, cancel := context.WithCancel(b.ctx)
	cancel()
	_, err := b.st.Insert(ctx, s, models.Row{"qty": int64(1)})
	require.Error(t, err)
	require.True(t, errors.Is(err, context.Canceled), "got %v", err)
	_, err = b.st.Query(ctx, s, models.Query{})
	require.ErrorIs(t, err, context.Canceled)
	require.Zero(t, b.count(t, s))
}

func testClosed(t *testing.T, b *bundle) {
	s := b.ensured(t, b.model)
	b.insert(t, s, map[string]any{"qty": 1})
	require.NoError(t, b.st.Close())
	require.NoError(t, b.st.Close(), "Close is safe twice")
	_, err := b.st.Insert(b.ctx, s, models.Row{"qty": int64(2)})
	require.ErrorIs(t, err, models.ErrUnavailable)
	_, err = b.st.Get(b.ctx, s, 1)
	require.ErrorIs(t, err, models.ErrUnavailable)
	_, err = b.st.Query(b.ctx, s, models.Query{})
	require.ErrorIs(t, err, models.ErrUnavailable)
	require.ErrorIs(t, b.st.Ensure(b.ctx, s), models.ErrUnavailable)
}
