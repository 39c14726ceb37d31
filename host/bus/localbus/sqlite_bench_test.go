package localbus

import (
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/embedded/sqlitedb"
)

// BenchmarkSQLiteAlternative measures what a bus on SQLite (modernc.org/sqlite opened as the
// embedded stores open it, WAL, synchronous=FULL) would pay for storage alone, without any of the dispatching: per message,
// insert it, read it back and insert its pending row on delivery (with the group's cursor),
// delete that row on ack — in transactions of 16 messages, one commit each for publish,
// delivery and ack, on one goroutine. Compare its msgs/s with BenchmarkEndToEnd, which does all
// of that and the dispatching through the log (docs/bus.md).
//
//	go test -run '^$' -bench SQLiteAlternative -benchtime 50000x ./host/bus/localbus/
func BenchmarkSQLiteAlternative(b *testing.B) {
	db, err := sqlitedb.Open(filepath.Join(b.TempDir(), "bus.db"), sqlitedb.Options{SyncFull: true})
	require.NoError(b, err)
	defer db.Close()
	for _, q := range []string{
		`CREATE TABLE messages(topic INTEGER, seq INTEGER, payload BLOB, headers BLOB, PRIMARY KEY(topic, seq)) WITHOUT ROWID`,
		`CREATE TABLE pending(grp INTEGER, seq INTEGER, consumer TEXT, count INTEGER, PRIMARY KEY(grp, seq)) WITHOUT ROWID`,
		`CREATE TABLE groups(id INTEGER PRIMARY KEY, next INTEGER)`,
		`INSERT INTO groups VALUES (1, 0)`,
	} {
		_, err := db.Exec(q)
		require.NoError(b, err)
	}
	payload := make([]byte, 200)
	const batch = 16
	tx := func(fn func(tx *sql.Tx)) {
		t, err := db.Begin()
		require.NoError(b, err)
		fn(t)
		require.NoError(b, t.Commit())
	}
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		end := min(i+batch, b.N)
		tx(func(t *sql.Tx) {
			for j := i; j < end; j++ {
				_, err := t.Exec(`INSERT INTO messages VALUES (1, ?, ?, ?)`, j, payload, `{"n":"1"}`)
				require.NoError(b, err)
			}
		})
		tx(func(t *sql.Tx) {
			rows, err := t.Query(`SELECT seq, payload, headers FROM messages WHERE topic = 1 AND seq >= ? ORDER BY seq LIMIT ?`, i, batch)
			require.NoError(b, err)
			for rows.Next() {
				var s int64
				var p, h []byte
				require.NoError(b, rows.Scan(&s, &p, &h))
			}
			require.NoError(b, rows.Close())
			for j := i; j < end; j++ {
				_, err := t.Exec(`INSERT INTO pending VALUES (1, ?, 'c', 1)`, j)
				require.NoError(b, err)
			}
			_, err = t.Exec(`UPDATE groups SET next = ? WHERE id = 1`, end)
			require.NoError(b, err)
		})
		tx(func(t *sql.Tx) {
			for j := i; j < end; j++ {
				_, err := t.Exec(`DELETE FROM pending WHERE grp = 1 AND seq = ?`, j)
				require.NoError(b, err)
			}
		})
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
