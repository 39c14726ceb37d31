// Package sqlstore is the one models.Store implementation both SQL backends share: it runs the
// statements sqlgen writes over database/sql, keeps the schema catalog, converts values with the
// backend's Dialect and maps errors to the models sentinels. What genuinely differs between
// SQLite and PostgreSQL (value encoding, column types, locks, the bulk insert path, error codes)
// is a Dialect the backend gives to New.
//
// It must not open databases or know a driver: the backends (sqlitemodels, pgmodels) open them,
// configure their pools and own their options.
package sqlstore
