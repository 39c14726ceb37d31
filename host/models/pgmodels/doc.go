// Package pgmodels is the PostgreSQL model store (github.com/jackc/pgx/v5), for hosts that share
// their models' rows or need more than one machine's disk.
//
// It owns the tables of one PostgreSQL schema (public, or the one WithSchema names, created when
// missing): a catalog table (trellis_models) and one table per model, named from its fullName by
// sqlgen.TableName. Datetime is timestamptz, JSON jsonb, Numeric double precision, Stext
// varchar(255), Date date; ids come from an identity column, so they are never reused. Ensure
// runs under a transaction-scoped advisory lock, so hosts loading the same app at once agree.
// InsertMany reserves ids from the sequence and writes with COPY.
//
// It is Open and a dialect (dialect.go) of the shared store in internal/sqlstore, which runs
// every call over database/sql through pgx's driver (github.com/jackc/pgx/v5/stdlib): measured
// against pgxpool, the adapter costs no time a round trip does not hide. Only COPY needs pgx
// itself, reached through the transaction's connection.
//
// It implements models.Store and must not know about JavaScript, events or tasks.
package pgmodels
