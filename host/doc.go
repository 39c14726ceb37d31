// Package host is one Trellis host, as plain wiring: it loads an app through the registry, opens
// the backends it is given (OpenBackends; package host/backends chooses them from the
// configuration), and starts its parts in order — execution log, sandbox, event center, task
// center, model storage, hot reload — stopping them in reverse. It connects the parts where one
// needs another (a model write sends a model event and keeps date-field tasks in step), routes
// calls from JavaScript to Go-backed elements, and serves service calls.
//
// It must not name a concrete backend, decide how a part works, or speak HTTP: backends live in
// host/backends, the parts in host/engine, host/tasks and host/modelrt, rows of the log are made
// by host/execlog, and HTTP is package web, which reaches the host through interfaces it owns.
// docs/architecture.md draws the whole picture.
package host
