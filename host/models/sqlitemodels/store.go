package sqlitemodels

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/trellis-run/trellis/host/models"
	"github.com/trellis-run/trellis/host/models/internal/sqlstore"
)

// Store is the embedded model store. Safe for concurrent use.
type Store struct {
	*sqlstore.Store[*sqlstore.SQLTx]
}

var _ models.Store = (*Store)(nil)

// readConns is how many read-only connections answer queries at once.
const readConns = 4

// Open opens (creating when missing) the model database at path, e.g. DATA/models.db.
func Open(path string) (*Store, error) {
	if path == "" {
		return nil, fmt.Errorf("open: %w: the path is empty; pass the data directory's models.db", models.ErrUnavailable)
	}
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("open %s: %w: the path may not contain '?'", path, models.ErrUnavailable)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("open %s: %w: create its directory: %w", path, models.ErrUnavailable, err)
	}
	write, read, err := openDBs(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w: %w", path, models.ErrUnavailable, err)
	}
	// A read transaction in WAL mode sees one snapshot; SQLite knows no isolation levels.
	st, err := sqlstore.Open(context.Background(), dialect{}, sqlstore.NewSQLDB(write, sql.TxOptions{}), sqlstore.NewSQLDB(read, sql.TxOptions{ReadOnly: true}))
	if err != nil {
		if !errors.Is(err, models.ErrUnavailable) {
			err = fmt.Errorf("%w: %w", models.ErrUnavailable, err)
		}
		return nil, fmt.Errorf("open %s: %w (is it a writable SQLite database?)", path, err)
	}
	// After the writer made the file and put it in WAL mode.
	if err := read.PingContext(context.Background()); err != nil {
		st.Close()
		return nil, fmt.Errorf("open %s: %w: %w", path, models.ErrUnavailable, err)
	}
	return &Store{st}, nil
}

// openDBs makes the two pools: one connection for writes, since SQLite has one writer at a time
// anyway (and InsertRows counts on being the only writer), and query_only ones that answer Get
// and Query without waiting for it (WAL mode). Neither connects yet.
func openDBs(path string) (write, read *sql.DB, err error) {
	const common = "_pragma=busy_timeout(10000)&_pragma=temp_store(memory)&_pragma=cache_size(-16384)"
	write, err = sql.Open("sqlite", path+"?"+common+"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		return nil, nil, err
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	read, err = sql.Open("sqlite", path+"?"+common+"&_query_only=1")
	if err != nil {
		write.Close()
		return nil, nil, err
	}
	read.SetMaxOpenConns(readConns)
	read.SetMaxIdleConns(readConns)
	return write, read, nil
}
