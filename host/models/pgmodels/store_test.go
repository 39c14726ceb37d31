package pgmodels_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/models"
	"github.com/trellis-run/trellis/host/models/modelstest"
	"github.com/trellis-run/trellis/host/models/pgmodels"
)

// dsn is the test server, or a skip saying how to get one.
func testDSN(t testing.TB) string {
	t.Helper()
	v := os.Getenv("TRELLIS_TEST_POSTGRES")
	if v == "" {
		t.Skip("set TRELLIS_TEST_POSTGRES=postgres://trellis:trellis@127.0.0.1:5432/trellis_test?sslmode=disable (scripts start PostgreSQL) to run the PostgreSQL model tests")
	}
	return v
}

func randomHex() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// setup gives a test its own PostgreSQL schema, dropped when it ends.
func setup(t testing.TB) (dsn string, schema string) {
	t.Helper()
	dsn = testDSN(t)
	schema = "t_models_" + randomHex()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		require.NoError(t, err)
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, `DROP SCHEMA IF EXISTS "`+schema+`" CASCADE`)
		require.NoError(t, err)
	})
	return dsn, schema
}

func open(t testing.TB, dsn, schema string, opts ...pgmodels.Option) *pgmodels.Store {
	t.Helper()
	st, err := pgmodels.Open(context.Background(), dsn, append([]pgmodels.Option{pgmodels.WithSchema(schema), pgmodels.WithMaxConns(4)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	return st
}

func TestConformance(t *testing.T) {
	t.Parallel()
	dsn, schema := setup(t)
	open(t, dsn, schema)
	modelstest.Run(t, func(t *testing.T) models.Store { return open(t, dsn, schema) })
}

// An unreachable server is ErrUnavailable, quickly.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	start := time.Now()
	_, err := pgmodels.Open(t.Context(), "postgres://trellis:trellis@127.0.0.1:1/trellis?sslmode=disable", pgmodels.WithConnectTimeout(2*time.Second))
	require.ErrorIs(t, err, models.ErrUnavailable)
	require.Less(t, time.Since(start), 5*time.Second)
	require.NotContains(t, err.Error(), "trellis:trellis", "the password stays out of messages")

	// A server that answers but then goes away.
	_, err = pgmodels.Open(t.Context(), "postgres://trellis:trellis@10.255.255.1:5432/x?sslmode=disable", pgmodels.WithConnectTimeout(300*time.Millisecond))
	require.ErrorIs(t, err, models.ErrUnavailable)
}

func TestInvalidOptions(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	for _, tc := range []struct {
		dsn  string
		opts []pgmodels.Option
	}{
		{"postgres://a:b@127.0.0.1:1/x?sslmode=bogus", nil},
		{"postgres://127.0.0.1:1/x", []pgmodels.Option{pgmodels.WithMaxConns(-1)}},
		{"postgres://127.0.0.1:1/x", []pgmodels.Option{pgmodels.WithConnectTimeout(-time.Second)}},
		{"postgres://127.0.0.1:1/x", []pgmodels.Option{pgmodels.WithSchema(strings.Repeat("s", 64))}},
	} {
		_, err := pgmodels.Open(ctx, tc.dsn, tc.opts...)
		require.ErrorIs(t, err, pgmodels.ErrInvalidOptions, tc.dsn)
	}
}

// The storage format is part of the contract for people reading the tables with other tools.
func TestStorageFormat(t *testing.T) {
	t.Parallel()
	dsn, schema := setup(t)
	st := open(t, dsn, schema)
	ctx := t.Context()
	s, err := models.SchemaOf("models.Format", map[string]any{"fields": []any{
		map[string]any{"name": "short", "type": "Stext"}, map[string]any{"name": "long", "type": "Ltext"},
		map[string]any{"name": "n", "type": "Integer"}, map[string]any{"name": "x", "type": "Numeric"},
		map[string]any{"name": "ok", "type": "Boolean"}, map[string]any{"name": "day", "type": "Date"},
		map[string]any{"name": "at", "type": "Datetime"}, map[string]any{"name": "doc", "type": "JSON"},
	}})
	require.NoError(t, err)
	require.NoError(t, st.Ensure(ctx, s))

	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT c.column_name, c.data_type, COALESCE(c.character_maximum_length, 0)
		FROM information_schema.columns c JOIN `+"\""+schema+"\""+`.trellis_models m ON m.tbl = c.table_name
		WHERE c.table_schema = $1 AND m.model = $2`, schema, s.Model)
	require.NoError(t, err)
	got := map[string]string{}
	for rows.Next() {
		var name, typ string
		var length int
		require.NoError(t, rows.Scan(&name, &typ, &length))
		if length > 0 {
			typ += "(" + strconv.Itoa(length) + ")"
		}
		got[name] = typ
	}
	require.NoError(t, rows.Err())
	require.Equal(t, map[string]string{
		"id": "bigint", "short": "character varying(255)", "long": "text", "n": "bigint", "x": "double precision",
		"ok": "boolean", "day": "date", "at": "timestamp with time zone", "doc": "jsonb",
	}, got)
}

// A connection the server drops is replaced: the call that meets it may fail with
// ErrUnavailable, and later calls work again.
func TestDroppedConnection(t *testing.T) {
	t.Parallel()
	dsn, schema := setup(t)
	app := "trellis_models_test_" + randomHex()
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	st := open(t, u.String(), schema)
	ctx := t.Context()
	s := models.Schema{Model: "models.Dropped", Fields: []models.Field{{Name: "n", Type: models.TypeInteger}}}
	require.NoError(t, st.Ensure(ctx, s))
	r, err := st.Insert(ctx, s, models.Row{"n": int64(1)})
	require.NoError(t, err)

	admin, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer admin.Close(ctx)
	var killed int
	require.NoError(t, admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&killed))
	require.Positive(t, killed)

	require.Eventually(t, func() bool {
		_, err := st.Get(ctx, s, r["id"].(int64))
		if err != nil {
			require.ErrorIs(t, err, models.ErrUnavailable)
		}
		return err == nil
	}, 10*time.Second, 10*time.Millisecond)
}

func BenchmarkInsertMany100k(b *testing.B) {
	dsn, schema := setup(b)
	modelstest.BenchInsertMany(b, open(b, dsn, schema), 100_000)
}

func BenchmarkQueryFiltered(b *testing.B) {
	dsn, schema := setup(b)
	modelstest.BenchQueryFiltered(b, open(b, dsn, schema), 100_000)
}

func BenchmarkCRUD(b *testing.B) {
	dsn, schema := setup(b)
	modelstest.BenchCRUD(b, open(b, dsn, schema), 100_000)
}
