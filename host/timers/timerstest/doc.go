// Package timerstest is the one conformance suite of timers.Store and timers.Runner: every
// backend's _test.go runs Run against a real store (embedded SQLite, Redis with two clients), so
// none is tested on a mock only; and the shared benchmarks (Create, lateness with many pending
// tasks). It is a test helper: nothing in the product imports it, and it must not depend on a
// particular backend.
package timerstest
