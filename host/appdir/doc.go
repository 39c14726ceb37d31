// Package appdir edits an app directory safely: it maps an element's fullName to its directory
// below the app directory, refuses every name or path that could reach outside it (no "..", no
// symlink followed, never the data directory), gives an element on disk its version (a hash of
// its files), validates a draft on an overlay — a temporary copy of the app with the draft
// applied, loaded with the registry options it is given — and writes or removes an element's
// directory in one step (a staged directory swapped in with one rename, other files carried over
// as hard links, a deleted element renamed away whole).
//
// It must not import the host or any runtime part, run code, or reload the running app: the
// host passes in what it knows (the app and data directories, its registry options), holds one
// edit at a time, and makes the saved version current itself (host/edit.go).
package appdir
