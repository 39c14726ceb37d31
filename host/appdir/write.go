package appdir

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// writeElementDir makes dir hold exactly files as the element's editable files, in one step: the
// new directory is built beside it under a hidden name (which neither the registry nor the
// watcher reads) and swapped in with one rename, so the app directory never shows a half-written
// element, even after a crash. What else the old directory held (nested elements, other files)
// is carried over as hard links.
func writeElementDir(dir string, files map[string]string) (err error) {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	stage, err := os.MkdirTemp(parent, ".trellis-edit-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(stage)
		}
	}()
	if err := os.Chmod(stage, 0o755); err != nil {
		return err
	}
	old, exists, err := readElement(dir)
	if err != nil {
		return err
	}
	if _, statErr := os.Lstat(dir); statErr == nil {
		if err := linkTree(dir, stage, old); err != nil {
			return err
		}
	}
	for name, text := range files {
		if err := writeInside(stage, name, text, true); err != nil {
			return err
		}
	}
	if err := syncDir(stage); err != nil {
		return err
	}
	if _, statErr := os.Lstat(dir); statErr == nil || exists {
		if err := exchange(stage, dir); err != nil {
			return err
		}
		// stage now holds the old version.
		_ = os.RemoveAll(stage)
	} else if err := os.Rename(stage, dir); err != nil {
		return err
	}
	return syncDir(parent)
}

// linkTree recreates src in dst, hard-linking its files, except the files named in skip
// (relative slash paths): the old version's editable files, which the new version replaces.
func linkTree(src, dst string, skip map[string]string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == src {
			return err
		}
		rel := relTo(src, p)
		if _, ok := skip[rel]; ok {
			return nil
		}
		out := filepath.Join(dst, filepath.FromSlash(rel))
		switch {
		case d.IsDir():
			return os.Mkdir(out, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, out)
		case !d.Type().IsRegular():
			return nil
		}
		if err := os.Link(p, out); err == nil {
			return nil
		}
		return copyFile(p, out)
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// writeInside writes the file rel (a slash path already checked by checkFileName) below root,
// creating its directories, and never through a symlink: every directory on the way is checked
// with Lstat, and the file is created new (O_EXCL fails on anything already there, a symlink
// included). sync makes it durable.
func writeInside(root, rel, text string, sync bool) error {
	parts := strings.Split(rel, "/")
	cur := root
	for _, d := range parts[:len(parts)-1] {
		cur = filepath.Join(cur, d)
		fi, err := os.Lstat(cur)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(cur, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink != 0 || !fi.IsDir():
			return fmt.Errorf("%w: %s is a symlink or a file, not a directory", ErrBadDraft, relTo(root, cur))
		}
	}
	p := filepath.Join(cur, parts[len(parts)-1])
	if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() && !sync {
		// In the overlay copy a regular file of that name is replaced (a staged directory never
		// holds one: the old version's editable files are not carried over).
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		_ = f.Close()
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			_ = f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	// A fresh nanosecond mtime: the registry reuses a file it has read when size and mtime are
	// unchanged, and the file system's own clock is coarse (milliseconds), so two quick saves of
	// the same size could otherwise look like one.
	now := time.Now()
	return os.Chtimes(p, now, now)
}

// syncDir makes a directory's entries durable (a rename is not, until its directory is synced).
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}

// swapByTwoRenames is the fallback of exchange where the system cannot swap two directories in
// one call: the element is absent between the two renames (a reload then may see it missing for
// an instant), never half-written.
func swapByTwoRenames(stage, dir string) error {
	aside := stage + "-old"
	if err := os.Rename(dir, aside); err != nil {
		return err
	}
	if err := os.Rename(stage, dir); err != nil {
		_ = os.Rename(aside, dir)
		return err
	}
	return os.Rename(aside, stage)
}
