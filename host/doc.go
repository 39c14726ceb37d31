// Package host is one Trellis host: it loads an app through the registry, keeps it hot-reloaded,
// runs its JavaScript on the configured executor (isolated worker processes by default, or the
// in-process VM), and routes calls from JavaScript to the built-in Go services.
//
// It owns the wiring and the lifecycle of those parts (Start/Stop) and nothing else: loading and
// validation live in host/registry, the sandbox in host/jsvm and host/isolate, built-in service
// methods in host/services, and HTTP in package web, which reaches the host through a narrow
// interface.
package host
