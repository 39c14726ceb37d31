//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package appendlog

import (
	"fmt"
	"os"
)

// lockDir creates path exclusively where flock is not available; a crashed process leaves it
// behind and the operator must remove it.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("%w: %s exists: another process has the directory, or a crashed one left it (remove it then): %w", ErrLocked, path, err)
	}
	return f, nil
}

func unlockDir(f *os.File) error {
	if f == nil {
		return nil
	}
	name := f.Name()
	err := f.Close()
	if rerr := os.Remove(name); err == nil {
		err = rerr
	}
	return err
}
