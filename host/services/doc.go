// Package services holds the built-in services Trellis implements in Go (events.services.EventSvc,
// services.TaskSvc) and the binding of JavaScript calls to them: positional arguments in the
// documented order or one object of named arguments, checked against the functionList the
// built-in element declares in its e.json.
//
// It owns argument binding and the Go side of each method; it must not reach into the sandbox
// (package jsvm) or the HTTP layer. Methods whose capability arrives in a later part of Trellis
// are declared by their element but not registered here, and calling one says so.
package services
