package chstore

import "errors"

// Sentinel errors of the ClickHouse store. Each one that means "the log cannot be used" is
// returned wrapped together with logstore.ErrUnavailable, so callers that only know the
// logstore contract still map it to "backend down".
var (
	// ErrSchema: a table or view with the store's name exists but is not the execution log
	// (other columns or types). Drop it or choose another Options.Table.
	ErrSchema = errors.New("chstore: existing table does not match the execution log schema")
	// ErrOptions: an Options field is not usable; the message names it.
	ErrOptions = errors.New("chstore: invalid options")
	// ErrClosed: the store was closed; open a new one.
	ErrClosed = errors.New("chstore: store is closed")
)
