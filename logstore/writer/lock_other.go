//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package writer

import (
	"fmt"
	"os"
)

// lockDir only creates the lock file where flock is missing: two writers on one SpoolDir are
// not detected there.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("%w: open lock file: %v", ErrSpool, err)
	}
	return f, nil
}

func unlockDir(f *os.File) error {
	if f == nil {
		return nil
	}
	return f.Close()
}
