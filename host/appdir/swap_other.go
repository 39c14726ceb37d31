//go:build !linux

package appdir

func exchange(stage, dir string) error { return swapByTwoRenames(stage, dir) }
