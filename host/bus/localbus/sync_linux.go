package localbus

import (
	"os"
	"syscall"
)

// fdatasync flushes the file's data (and the size, which appends change) without the
// modification time: what replay needs, for less than fsync costs.
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
