//go:build !linux

package localbus

import "os"

func fdatasync(f *os.File) error { return f.Sync() }
