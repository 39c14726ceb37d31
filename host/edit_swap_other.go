//go:build !linux

package host

func exchange(stage, dir string) error { return swapByTwoRenames(stage, dir) }
