// Package parttest is test plumbing for the package tests of the runtime parts — engine, tasks —
// on embedded backends. It is imported only by tests.
//
// A part's test writes a small app to t.TempDir() and loads it the way every command loads one
// (WriteApp, LoadApp: host.RegistryOptions), runs it in the in-process sandbox with what the
// host gives the sandbox plus a test-only host element, services.Probe (NewVM, SourceOf, Probe),
// and records into a real localstore behind a real writer (OpenLog), through a Sink that signals
// the test on every write. Tests wait on what the part does — a row written, a probe hit — never
// on sleeps; every wait is bounded by WaitLimit.
//
// Only the external tests of a part (package engine_test, tasks_test) can use it: the package
// imports host, and host imports the parts.
package parttest

import "time"

// WaitLimit bounds every wait; a healthy run takes milliseconds (ticks of the task center: a
// second or two).
const WaitLimit = 20 * time.Second
