// Package elements holds Trellis's built-in elements: the platform's own app, shipped inside the
// binary in the same e.json format users write, so the editor can show them and an app can
// override any of them by fullName.
//
// It owns these files and nothing else: no Go logic lives here. Loading, resolution and
// validation belong to host/registry; the Go implementations of the native services
// (events.services.EventSvc, services.TaskSvc) belong to the host.
package elements

import (
	"embed"
	"io/fs"
)

//go:embed events services tasks models signals
var files embed.FS

// FS is the root of the built-in app: it holds events/, services/, tasks/, models/ and signals/,
// each element a directory with an e.json. Pass it as registry.Options.Builtins; it is read-only
// and safe to share.
var FS fs.FS = files
