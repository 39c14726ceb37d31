// Package modelrt is the runtime of models.NormalType elements: the create, get, update, save,
// delete and query methods JavaScript and HTTP call, with the model's lifecycle functions
// (beforeSave, afterSave, afterDelete) run around each write, a model event emitted after it
// (events.ModelType listeners hear {operate, postData, prevData}) and the row's date-field tasks
// kept in step.
//
// It owns the order of those steps and the shape of arguments and errors (every error carries a
// code JavaScript sees as `.code`). It must not store rows itself (a models.Store does), run
// JavaScript itself (Options.Lifecycle does, through the host's sandbox), send events or
// schedule tasks itself (Options.Emit and Options.DateFields do): the host wires those in, so
// this package imports neither the engine nor the timers.
//
// Write order, for every write path:
//
//	create: Coerce -> beforeSave(row, null) -> Insert -> afterSave(row, null) -> Emit afterCreate -> DateFields(nil, row)
//	update: Get -> merge patch -> beforeSave(row, prev) -> Update -> afterSave(row, prev) -> Emit afterUpdate -> DateFields(prev, row)
//	delete: Delete -> afterDelete(prev) -> Emit afterDelete -> DateFields(prev, nil)
//
// A failure before the store call stores nothing. A failure after it (afterSave, afterDelete,
// Emit, DateFields) does not undo the write: the later steps still run, and the error, which
// wraps ErrAfterWrite, says the row was written and what did not happen.
package modelrt
