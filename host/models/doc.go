// Package models owns the storage side of models.NormalType elements: the field types, the
// value rules (Coerce turns what JavaScript or HTTP gives into the stored value model, Present
// turns a stored row back into what they see), the query language (filters, orderBy, paging)
// and the Store interface every backend implements.
//
// Backends live beside it: sqlitemodels (embedded, the default) and pgmodels (PostgreSQL).
// Both pass the one conformance suite in modelstest.
//
// It must not know about JavaScript, lifecycle functions (beforeSave, afterSave, afterDelete),
// model events or date-field tasks: the host runs those around the Store calls. It must not
// import a backend or a database driver.
package models
