package localbus

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/bus"
)

// testdata/bus-v1.log was written by the bus before it used appendlog (Trellis at commit
// 15d9932): six messages on topic t; group g took three with Prefetch 3, acked the first and
// nacked the second (delivered again: its second delivery); group other starts at the newest;
// then a Trim dropped the acked message.
func copyLegacyLog(t *testing.T, dir string) {
	t.Helper()
	data, err := os.ReadFile("testdata/bus-v1.log")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, legacyName), data, 0o640))
}

// requireLegacyState checks b holds what testdata/bus-v1.log holds, and consumes it.
func requireLegacyState(t *testing.T, b *Bus) {
	t.Helper()
	lags, err := b.Lag(t.Context(), "t")
	require.NoError(t, err)
	require.Equal(t, []bus.GroupLag{
		{Group: "g", Pending: 2, Undelivered: 3, Consumers: 1},
		{Group: "other", Pending: 0, Undelivered: 0, Consumers: 0},
	}, lags)
	n, err := b.Len(t.Context(), "t")
	require.NoError(t, err)
	require.Equal(t, int64(5), n, "the trimmed message stays gone")
	sub, err := b.Subscribe(t.Context(), "t", "g", bus.SubscribeOptions{Consumer: "c"})
	require.NoError(t, err)
	for _, w := range []struct {
		id, payload string
		count       int
	}{{"2", "m1", 3}, {"3", "m2", 2}, {"4", "m3", 1}, {"5", "m4", 1}, {"6", "m5", 1}} {
		d := recv(t, sub)
		require.Equal(t, w.id, d.Message().ID)
		require.Equal(t, w.payload, string(d.Message().Payload))
		require.Equal(t, map[string]string{"n": w.payload[1:]}, d.Message().Headers)
		require.Equal(t, w.count, d.Deliveries(), "message %s", w.id)
	}
	require.NoError(t, sub.Close())
}

// A log written before the bus used appendlog is read on upgrade, moved into the new log and
// deleted.
func TestLegacyLogIsMigrated(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	copyLegacyLog(t, dir)
	b := open(t, dir, Options{})
	require.NoFileExists(t, filepath.Join(dir, legacyName))
	requireLegacyState(t, b)
	ids := publish(t, b, "t", 6, 7)
	require.Equal(t, []string{"7"}, ids, "sequence numbers go on from the old log")
	require.NoError(t, b.Close())

	b = open(t, dir, Options{})
	n, err := b.Len(t.Context(), "t")
	require.NoError(t, err)
	require.Equal(t, int64(6), n)
}

// A migration that wrote the new log but died before deleting bus.log must not apply bus.log a
// second time.
func TestLegacyLogLeftByAnInterruptedMigration(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	copyLegacyLog(t, dir)
	b := open(t, dir, Options{})
	b.crash()
	copyLegacyLog(t, dir)

	b = open(t, dir, Options{})
	require.NoFileExists(t, filepath.Join(dir, legacyName))
	requireLegacyState(t, b)
}
