// Package vocab is the vocabulary every layer of Trellis speaks: error codes and coded errors,
// the words messages use to name a value's kind, datetimes in the app's "YYYY-MM-DD HH:mm:ss"
// form, ids, and the one JSON decoder that keeps integers exact.
//
// It is a leaf: it imports nothing of ours, so the sandbox, the engine, the task center, the
// model runtime, the services and the HTTP layer can all share it without importing each other
// (before it, models imported the sandbox for datetimes and tasks imported the engine for ids).
// It must stay small and free of policy: no I/O, no configuration, no state.
package vocab
