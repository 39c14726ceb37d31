// Package sqlitemodels is the embedded model store, the default when no PostgreSQL is
// configured: one SQLite database file (modernc.org/sqlite, pure Go, no cgo) in the host's data
// directory (the host passes DATA/models.db), persistent across restarts.
//
// It owns that file: a catalog table (trellis_models) and one STRICT table per model, named from
// its fullName by sqlgen.TableName. Datetime is stored as integer milliseconds UTC, JSON as text,
// Boolean as 0/1, Date as "YYYY-MM-DD" text; ids come from AUTOINCREMENT, so they are never
// reused. One writer connection runs every write in a transaction; several read-only
// connections answer Get and Query without waiting for it (WAL mode).
//
// It is Open (through host/embedded/sqlitedb, like every embedded SQLite user) and a dialect
// (dialect.go) under the shared store in internal/sqlstore.
//
// It implements models.Store and must not know about JavaScript, events or tasks.
package sqlitemodels
