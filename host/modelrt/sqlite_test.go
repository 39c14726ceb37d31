package modelrt_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/models"
	"github.com/trellis-run/trellis/host/models/sqlitemodels"
)

func openSQLite(t testing.TB) models.Store {
	t.Helper()
	s, err := sqlitemodels.Open(filepath.Join(t.TempDir(), "models.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestSQLite(t *testing.T) {
	t.Parallel()
	runCases(t, openSQLite)
}
