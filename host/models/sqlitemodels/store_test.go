package sqlitemodels_test

import (
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/models"
	"github.com/trellis-run/trellis/host/models/modelstest"
	"github.com/trellis-run/trellis/host/models/sqlitemodels"
)

func open(t testing.TB, path string) *sqlitemodels.Store {
	t.Helper()
	st, err := sqlitemodels.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	return st
}

func TestConformance(t *testing.T) {
	t.Parallel()
	// One database for the whole suite, as a host has one per data directory; subtests use
	// their own models.
	path := filepath.Join(t.TempDir(), "models.db")
	open(t, path)
	modelstest.Run(t, func(t *testing.T) models.Store { return open(t, path) })
}

// Rows survive Close and Open.
func TestReopenKeepsRows(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "data", "models.db")
	ctx := t.Context()
	s := models.Schema{Model: "models.Keep", Fields: []models.Field{{Name: "qty", Type: models.TypeInteger}}}
	st, err := sqlitemodels.Open(path)
	require.NoError(t, err)
	require.NoError(t, st.Ensure(ctx, s))
	r, err := st.Insert(ctx, s, models.Row{"qty": int64(42)})
	require.NoError(t, err)
	require.NoError(t, st.Close())

	st = open(t, path)
	require.NoError(t, st.Ensure(ctx, s))
	got, err := st.Get(ctx, s, r["id"].(int64))
	require.NoError(t, err)
	require.Equal(t, r, got)
	next, err := st.Insert(ctx, s, models.Row{"qty": int64(43)})
	require.NoError(t, err)
	require.Greater(t, next["id"].(int64), r["id"].(int64))
}

// The storage format is part of the contract for people reading the file with other tools.
func TestStorageFormat(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "models.db")
	ctx := t.Context()
	st := open(t, path)
	s, err := models.SchemaOf("models.Format", map[string]any{"fields": []any{
		map[string]any{"name": "at", "type": "Datetime"},
		map[string]any{"name": "ok", "type": "Boolean"},
		map[string]any{"name": "doc", "type": "JSON"},
		map[string]any{"name": "day", "type": "Date"},
	}})
	require.NoError(t, err)
	require.NoError(t, st.Ensure(ctx, s))
	in, err := models.Coerce(s, map[string]any{"at": "2024-05-01T00:00:00.250Z", "ok": true, "doc": map[string]any{"a": 1}, "day": "2024-05-01"}, nil, true)
	require.NoError(t, err)
	_, err = st.Insert(ctx, s, in)
	require.NoError(t, err)

	db, err := sql.Open("sqlite", path+"?_query_only=1")
	require.NoError(t, err)
	defer db.Close()
	var table string
	require.NoError(t, db.QueryRowContext(ctx, `SELECT tbl FROM trellis_models WHERE model = ?`, s.Model).Scan(&table))
	require.Regexp(t, `^m_models_format_[0-9a-f]{16}$`, table)
	var at, ok int64
	var doc, day string
	require.NoError(t, db.QueryRowContext(ctx, `SELECT "at", "ok", "doc", "day" FROM "`+table+`"`).Scan(&at, &ok, &doc, &day))
	require.Equal(t, int64(1714521600250), at, "Datetime is integer milliseconds UTC")
	require.Equal(t, int64(1), ok)
	require.JSONEq(t, `{"a": 1}`, doc)
	require.Equal(t, "2024-05-01", day)
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	_, err := sqlitemodels.Open("")
	require.ErrorIs(t, err, models.ErrUnavailable)
	_, err = sqlitemodels.Open(filepath.Join(t.TempDir(), "a?b.db"))
	require.ErrorIs(t, err, models.ErrUnavailable)
	_, err = sqlitemodels.Open(t.TempDir()) // a directory, not a file
	require.ErrorIs(t, err, models.ErrUnavailable)
}

func BenchmarkInsertMany100k(b *testing.B) {
	st := open(b, filepath.Join(b.TempDir(), "models.db"))
	modelstest.BenchInsertMany(b, st, 100_000)
}

func BenchmarkQueryFiltered(b *testing.B) {
	st := open(b, filepath.Join(b.TempDir(), "models.db"))
	modelstest.BenchQueryFiltered(b, st, 100_000)
}

func BenchmarkCRUD(b *testing.B) {
	modelstest.BenchCRUD(b, open(b, filepath.Join(b.TempDir(), "models.db")), 100_000)
}
