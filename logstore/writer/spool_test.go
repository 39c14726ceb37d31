package writer

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// appendRows spools rows as records of perRecord rows each and waits for their fsync.
func appendRows(t *testing.T, sp *spool, first, n, perRecord int) {
	t.Helper()
	recs := encodeRecords(nil, testRows(first, n), perRecord)
	c, err := sp.append(nil, recs, n)
	require.NoError(t, err)
	<-c.Done()
	require.NoError(t, c.Err())
}

// The inserter acks a batch while the reader is half-way through the next one (the writer
// reads batch n+1 while batch n is being inserted). The ack must not carry the checkpoint past
// the rows of the batch being read: they are not in the store yet. The kill -9 test once lost
// 576 acknowledged rows this way, when the process died before that batch was inserted.
func TestAckDuringReadKeepsTheBatchBeingRead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	logs := &logBuffer{}
	sp, err := openSpool(dir, 1<<20, 1<<30, slogTo(logs))
	require.NoError(t, err)
	appendRows(t, sp, 0, 10, 10)  // one record: the first batch
	appendRows(t, sp, 10, 30, 10) // three records: the second batch

	b1, err := sp.readBatch(10)
	require.NoError(t, err)
	require.Len(t, b1.rows, 10)

	acks := 0
	sp.afterRecord = func() {
		if acks == 0 {
			sp.ack(b1) // the inserter finished the first batch just now
		}
		acks++
	}
	b2, err := sp.readBatch(30)
	require.NoError(t, err)
	require.Len(t, b2.rows, 30)
	require.Equal(t, 3, acks, "the ack ran while the second batch was being read")
	sp.mu.Lock()
	published := sp.published
	sp.mu.Unlock()
	require.Equal(t, b1.end, published, "Flush would report rows of the batch being read as inserted")

	// The process dies before the second batch is inserted: every one of its rows is replayed.
	crashSpool(sp)
	sp, err = openSpool(dir, 1<<20, 1<<30, slogTo(logs))
	require.NoError(t, err)
	defer func() { sp.closeAppends(); sp.close() }()
	require.Equal(t, int64(30), sp.replayed, "rows of the batch being read when the first was acked")
	b, err := sp.readBatch(100)
	require.NoError(t, err)
	require.Equal(t, ids(testRows(10, 30)), ids(b.rows))
}

// testdata/spool-v1 was left by the spool before it moved onto appendlog (Trellis at commit
// 15d9932): rows 0…59 in records of 10 over five 8 KiB segments, the last one preallocated,
// with a checkpoint after the first record (rows 0…9 were inserted), then a crash. The
// spool of today replays exactly the rows that were not inserted.
func TestSpoolOfAnOlderTrellisIsReplayed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	entries, err := os.ReadDir("testdata/spool-v1")
	require.NoError(t, err)
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join("testdata/spool-v1", e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, e.Name()), data, 0o640))
	}
	b := setup(t, Options{SpoolDir: dir, BatchRows: 25, FlushInterval: time.Hour})
	require.Equal(t, int64(50), b.w.Stats().Replayed)
	require.NoError(t, b.w.Flush(context.Background()))
	requireExactlyOnce(t, b.mem, testRows(10, 50))
	require.NotContains(t, b.logs.String(), "torn")
	require.NotContains(t, b.logs.String(), "corrupt")
}
