// Package modelstest is the one conformance suite every models.Store backend runs, so the
// embedded store and PostgreSQL keep the same promises (the Store and Query doc comments):
// round trips of every field type (NULLs, unicode, nested JSON, extremes), insert, get, update,
// delete and not found, every filter operator, or/and and null, multi-key and descending
// orderBy, paging and totalCount, Ensure (idempotent, adding fields, refusing changed types),
// concurrent inserts, InsertMany, atomic writes, odd model names and a closed store.
//
// It is a non-test package so each backend's own test calls Run with a constructor. It owns no
// backend and must not import one.
//
// Every subtest works on its own model names (a random run id in each), so a backend may hand
// every subtest the same database and several runs may share one server.
//
// What the suite takes as the contract where models' doc comments leave room:
//   - text is compared and ordered by the database's collation, so the suite never orders by
//     text fields, and like is tested with ASCII letters only (SQLite folds ASCII case only);
//   - Numeric values round-trip exactly as float64 (both backends store IEEE doubles).
package modelstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/models"
)

// Run runs the conformance suite. open is called once per subtest and must return a Store the
// subtest may Close (Close is safe twice, so the backend may also close it in t.Cleanup); the
// stores it returns may share one database. Subtests run in parallel.
func Run(t *testing.T, open func(t *testing.T) models.Store) {
	t.Helper()
	run := randomID()
	t.Logf("modelstest: run %s", run)
	tests := []struct {
		name string
		fn   func(t *testing.T, b *bundle)
	}{
		{"RoundTripEveryType", testRoundTrip},
		{"InsertGetUpdateDelete", testCRUD},
		{"NotFound", testNotFound},
		{"IDsNeverReused", testIDsNeverReused},
		{"ExplicitIDs", testExplicitIDs},
		{"Filters", testFilters},
		{"FilterErrors", testFilterErrors},
		{"OrderBy", testOrderBy},
		{"Paging", testPaging},
		{"EnsureIdempotent", testEnsureIdempotent},
		{"EnsureAddsFields", testEnsureAddsFields},
		{"EnsureRefusesChangedType", testEnsureRefusesChangedType},
		{"WriteBeforeEnsure", testWriteBeforeEnsure},
		{"ConcurrentInserts", testConcurrentInserts},
		{"InsertMany", testInsertMany},
		{"BadValueStoresNothing", testBadValueStoresNothing},
		{"OddModelNames", testOddModelNames},
		{"SchemaIsolation", testSchemaIsolation},
		{"CanceledContext", testCanceledContext},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, setup(t, open, run))
		})
	}
}

// bundle is what every subtest starts with.
type bundle struct {
	ctx   context.Context
	st    models.Store
	run   string
	loc   *time.Location
	model string // a fresh model name; call orders() for its schema
}

func setup(t *testing.T, open func(t *testing.T) models.Store, run string) *bundle {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	return &bundle{
		ctx:   t.Context(),
		st:    open(t),
		run:   run,
		loc:   loc,
		model: fmt.Sprintf("models.%s_%s", sanitize(t.Name()), run),
	}
}

func sanitize(name string) string {
	out := []rune{}
	for _, r := range name {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			out = append(out, r)
		}
	}
	return string(out)
}

func randomID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// orderDefinition is an e.json "fields" list with every field type.
func orderDefinition() map[string]any {
	return map[string]any{"fields": []any{
		map[string]any{"name": "title", "title": "Title", "type": models.TypeStext},
		map[string]any{"name": "notes", "title": "Notes", "type": models.TypeLtext},
		map[string]any{"name": "qty", "title": "Quantity", "type": models.TypeInteger},
		map[string]any{"name": "price", "title": "Price", "type": models.TypeNumeric},
		map[string]any{"name": "paid", "title": "Paid", "type": models.TypeBoolean},
		map[string]any{"name": "dueDate", "title": "Due", "type": models.TypeDate},
		map[string]any{"name": "paidAt", "title": "Paid at", "type": models.TypeDatetime},
		map[string]any{"name": "meta", "title": "Meta", "type": models.TypeJSON},
	}}
}

// orders is the every-type schema for model, read the way the host reads an e.json.
func (b *bundle) orders(t *testing.T, model string) models.Schema {
	t.Helper()
	s, err := models.SchemaOf(model, orderDefinition())
	require.NoError(t, err)
	return s
}

// ensured is orders(model) with its table created.
func (b *bundle) ensured(t *testing.T, model string) models.Schema {
	t.Helper()
	s := b.orders(t, model)
	require.NoError(t, b.st.Ensure(b.ctx, s))
	return s
}

// row coerces JS-style input the way the host does before a write.
func (b *bundle) row(t *testing.T, s models.Schema, in map[string]any) models.Row {
	t.Helper()
	r, err := models.Coerce(s, in, b.loc, false)
	require.NoError(t, err)
	return r
}

func (b *bundle) insert(t *testing.T, s models.Schema, in map[string]any) models.Row {
	t.Helper()
	r, err := b.st.Insert(b.ctx, s, b.row(t, s, in))
	require.NoError(t, err)
	return r
}

func (b *bundle) count(t *testing.T, s models.Schema) int64 {
	t.Helper()
	p, err := b.st.Query(b.ctx, s, models.Query{PageSize: 1})
	require.NoError(t, err)
	return p.TotalCount
}

// full is the row a store returns for input r: every field, nil where r has none.
func full(s models.Schema, r models.Row, id int64) models.Row {
	out := models.Row{}
	for _, f := range s.AllFields() {
		out[f.Name] = r[f.Name]
	}
	out[models.IDField] = id
	return out
}

// requireRow compares rows field by field, datetimes by instant, so a backend may return any
// time.Location.
func requireRow(t *testing.T, want, got models.Row, msgAndArgs ...any) {
	t.Helper()
	require.Len(t, got, len(want), msgAndArgs...)
	for k, w := range want {
		g, ok := got[k]
		require.True(t, ok, "field %q missing from %v", k, got)
		if wt, isTime := w.(time.Time); isTime {
			gt, ok := g.(time.Time)
			require.True(t, ok, "field %q: want a time.Time, got %T %v", k, g, g)
			require.True(t, wt.Equal(gt), "field %q: want %s, got %s", k, wt, gt)
			continue
		}
		require.Equal(t, w, g, "field %q", k)
	}
}

// ids returns the ids of rows, in order.
func ids(rows []models.Row) []int64 {
	out := make([]int64, len(rows))
	for i, r := range rows {
		out[i], _ = r[models.IDField].(int64)
	}
	return out
}
