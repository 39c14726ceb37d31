package sqlitemodels

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/trellis-run/trellis/host/embedded/sqlitedb"
	"github.com/trellis-run/trellis/host/models"
	"github.com/trellis-run/trellis/host/models/internal/sqlstore"
)

// Store is the embedded model store. Safe for concurrent use.
type Store struct {
	*sqlstore.Store[*sqlstore.SQLTx]
}

var _ models.Store = (*Store)(nil)

// Both pools: model queries scan, so a larger page cache per connection pays, and sorts spill to
// memory rather than temp files.
const (
	cacheMiB  = 16
	readConns = 4 // query_only connections answering Get and Query at once
)

// Open opens (creating when missing) the model database at path, e.g. DATA/models.db.
func Open(path string) (*Store, error) {
	// One writer connection (InsertRows counts on being the only writer), and readers that
	// answer Get and Query without waiting for it (WAL mode).
	write, err := sqlitedb.Open(path, sqlitedb.Options{CacheMiB: cacheMiB, TempStoreMemory: true})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w: %w", path, models.ErrUnavailable, err)
	}
	read, err := sqlitedb.Open(path, sqlitedb.Options{ReadOnly: true, Conns: readConns, CacheMiB: cacheMiB, TempStoreMemory: true})
	if err != nil {
		write.Close()
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
	return &Store{st}, nil
}
