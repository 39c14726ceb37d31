package models

import "context"

// Store keeps the rows of every model. Safe for concurrent use. Every write is atomic: a failed
// write stores nothing. Values given to Insert, InsertMany and Update are already Coerce'd; a
// store applies Normalize again and refuses what does not fit (ErrUnknownField,
// ErrInvalidValue) before touching the database.
//
// Ids are never reused, even after a delete, because date-field tasks and events refer to rows
// by id. A row given to Insert or InsertMany with an id keeps it (imports keep their ids; an id
// already taken is ErrInvalidValue), and later ids are larger.
//
// Errors wrap the package's sentinels: ErrNotFound, ErrUnknownField, ErrInvalidValue, ErrSchema
// (no table for the model yet: call Ensure), ErrUnavailable (database unreachable or store
// closed).
type Store interface {
	// Ensure creates the model's table, and adds columns for fields added since (never drops:
	// a field removed from the schema keeps its column and data, so adding it back restores
	// them; a field whose type changed is ErrSchema with a message saying what to do, and
	// nothing changes). Idempotent; call on every app load. The table name is derived from the
	// fullName safely (quoted, no injection; names differing only in case get separate tables).
	Ensure(ctx context.Context, s Schema) error
	// Insert stores one row and returns it as stored, with its new id.
	Insert(ctx context.Context, s Schema, r Row) (Row, error)
	// Get returns row id, or ErrNotFound.
	Get(ctx context.Context, s Schema, id int64) (Row, error)
	// Update applies patch to row id in one transaction and returns the row before and after.
	// Fields not in patch keep their values; a nil value sets NULL. ErrNotFound when there is
	// no such row; an "id" in patch other than id is ErrInvalidValue.
	Update(ctx context.Context, s Schema, id int64, patch Row) (prev, post Row, err error)
	// Delete removes row id and returns it as it was, or ErrNotFound.
	Delete(ctx context.Context, s Schema, id int64) (prev Row, err error)
	// Query returns one page of the rows matching q (see Query) and how many match in all,
	// read from one snapshot.
	Query(ctx context.Context, s Schema, q Query) (Page, error)
	// InsertMany stores many rows in one transaction (bulk import of 100k rows must be quick)
	// and returns them as stored, in the order given.
	InsertMany(ctx context.Context, s Schema, rows []Row) ([]Row, error)
	// Close releases the database; later calls fail with ErrUnavailable. Safe to call twice.
	Close() error
}
