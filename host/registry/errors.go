package registry

import "errors"

// ErrInvalid is what a *ValidationError matches with errors.Is: the app has problems and was
// not loaded. Print the ValidationError itself to see every problem.
var ErrInvalid = errors.New("registry: the app has problems; fix them (trellis check lists them) and load again")

// ErrNotStarted is returned by Watcher methods that need a running watcher.
var ErrNotStarted = errors.New("registry: the watcher is not started; call Start first")

// ErrStopped is returned by Start after Stop: a watcher runs once; make a new one to watch again.
var ErrStopped = errors.New("registry: the watcher is stopped; create a new one with NewWatcher")
