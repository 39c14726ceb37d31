package modelrt_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/models"
	"github.com/trellis-run/trellis/host/models/pgmodels"
)

// openPostgres opens a store in a fresh PostgreSQL schema of its own, dropped when the test
// ends, so tests sharing the database never meet.
func openPostgres(dsn string) opener {
	return func(t testing.TB) models.Store {
		t.Helper()
		var b [6]byte
		_, err := rand.Read(b[:])
		require.NoError(t, err)
		schema := "modelrt_" + hex.EncodeToString(b[:])
		ctx := context.Background()
		s, err := pgmodels.Open(ctx, dsn, pgmodels.WithSchema(schema), pgmodels.WithMaxConns(4))
		require.NoError(t, err)
		t.Cleanup(func() {
			_ = s.Close()
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Logf("drop schema %s: %v", schema, err)
				return
			}
			defer func() { _ = conn.Close(ctx) }()
			if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
				t.Logf("drop schema %s: %v", schema, err)
			}
		})
		return s
	}
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	dsn := os.Getenv("TRELLIS_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("set TRELLIS_TEST_POSTGRES=postgres://trellis:trellis@127.0.0.1:5432/trellis_test?sslmode=disable to run the model runtime against PostgreSQL")
	}
	runCases(t, openPostgres(dsn))
}
