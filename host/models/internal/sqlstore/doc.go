// Package sqlstore is the one models.Store implementation both SQL backends share: it runs the
// statements sqlgen writes, keeps the schema catalog, converts values with the backend's Dialect
// and maps errors to the models sentinels. What genuinely differs between SQLite and PostgreSQL
// (value encoding, column types, locks, the bulk insert path, error codes) is the Dialect, and
// how connections and transactions are had is the DB (SQLDB here for database/sql; pgmodels
// keeps pgxpool behind its own).
//
// It must not open databases or import a driver: the backends open them, configure their pools
// and own their options.
package sqlstore
