package appdir

import "golang.org/x/sys/unix"

// exchange swaps two directories in one atomic rename (renameat2 RENAME_EXCHANGE): readers see
// the old element or the new one, nothing between.
func exchange(stage, dir string) error {
	err := unix.Renameat2(unix.AT_FDCWD, stage, unix.AT_FDCWD, dir, unix.RENAME_EXCHANGE)
	if err == unix.ENOSYS || err == unix.EINVAL || err == unix.EOPNOTSUPP {
		return swapByTwoRenames(stage, dir)
	}
	return err
}
