// Command trellis runs and checks Trellis apps: init writes a sample app, check validates one,
// call runs one service function, serve starts a host with the HTTP API and the editor.
//
// It turns flags, environment variables and trellis.yaml into a host.Config and picks the
// backends; everything else lives in package host and below.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/trellis-run/trellis/host/isolate"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// exitError carries the exit status a command wants, after it printed its own message.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	// The isolated sandbox starts its workers from this same binary.
	if isolate.IsWorker() {
		isolate.WorkerMain()
	}
	err := newRootCmd().Execute()
	var ee exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		os.Exit(ee.code)
	default:
		fmt.Fprintln(os.Stderr, "trellis:", err)
		os.Exit(1)
	}
}
