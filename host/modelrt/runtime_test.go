package modelrt_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/modelrt"
	"github.com/trellis-run/trellis/host/models"
	"github.com/trellis-run/trellis/host/registry"
)

func TestNewRefusesMissingParts(t *testing.T) {
	t.Parallel()
	_, err := modelrt.New(modelrt.Options{})
	require.Error(t, err)
	require.Contains(t, err.Error(), "Options.Store")
	require.Contains(t, err.Error(), "Options.Snapshot")
}

// TestWithoutHostParts: with no Lifecycle, Emit or DateFields the runtime is plain storage, and
// the timezone comes from app.json.
func TestWithoutHostParts(t *testing.T) {
	t.Parallel()
	store := openSQLite(t)
	snap := loadApp(t, writeApp(t, testApp))
	rt, err := modelrt.New(modelrt.Options{Store: store, Snapshot: func() *registry.Snapshot { return snap }})
	require.NoError(t, err)
	ctx := within(t)
	// No Ensure yet: the first call creates the table.
	row, err := rt.Create(ctx, "models.Order", map[string]any{"title": "after-fails", "qty": -1, "dueDate": "2024-05-01T00:00:00Z"}, modelrt.Caller{})
	require.NoError(t, err, "no lifecycle functions run without Options.Lifecycle")
	require.Equal(t, "2024-05-01 08:00:00", row["dueDate"], "app.json's Asia/Shanghai")
	require.Error(t, rt.Ensure(ctx, nil))
	require.NoError(t, rt.Ensure(ctx, snap))

	none, err := modelrt.New(modelrt.Options{Store: store, Snapshot: func() *registry.Snapshot { return nil }})
	require.NoError(t, err)
	_, err = none.Get(context.Background(), "models.Order", 1)
	require.ErrorIs(t, err, models.ErrUnavailable, "no app loaded yet")
}
