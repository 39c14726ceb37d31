//go:build !linux

package isolate

import (
	"os"
	"syscall"
)

// On systems other than Linux there is no /proc and no per-process RLIMIT_AS that the Go runtime
// respects the same way: workers still isolate crashes, deadlines and stack blow-ups, but only
// the in-VM probe and the Go soft limit cap memory. See docs/sandbox.md.

type statmFile struct{}

func openStatm(int) (*statmFile, error) { return nil, nil }
func (s *statmFile) read() memStats     { return memStats{} }
func (s *statmFile) close()             {}
func readSelfStats() memStats           { return memStats{} }
func setAddressSpaceLimit(uint64)       {}

func guardStdio() (in, out *os.File, err error) {
	out = os.Stdout
	os.Stdout = os.Stderr
	return os.Stdin, out, nil
}

// workerSysProcAttr has nothing to add where there is no Pdeathsig: a worker still exits when its
// stdin closes with its host.
func workerSysProcAttr() *syscall.SysProcAttr { return nil }
