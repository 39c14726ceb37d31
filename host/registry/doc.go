// Package registry loads an app directory into a Snapshot: it finds the elements (directories
// holding e.json), resolves them against the apps the app extends and the built-in elements
// (the app's own first, then each extended app in order, recursively, then built-ins), works
// out each element's Meta → Type → instance chain, validates everything at once with file,
// line and column, and keeps a Snapshot current as files change (Watcher), falling back to
// the last good version of anything a bad edit breaks.
//
// It owns reading, resolving and validating app files and nothing else. It never runs user
// code: JavaScript is only compiled, exactly as the sandbox compiles it (jscompile: syntax and
// early errors, nesting and cost limits), and read for exported functions and require targets.
// It never reads outside the app directories it is given (symlinks that leave them, entry paths
// with "..", files over MaxFileSize are problems) and never writes. It knows the built-in elements only
// through the fs.FS it is handed and the semantic checks in checks.go; everything else about
// events, tasks, services and models belongs to the host, which adds its own checks through
// Options.Validators.
package registry
