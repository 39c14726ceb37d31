package appdir

// Where an element lives and which names it may use: a fullName is a directory below the app
// directory, a draft's files are plain relative names inside it, and nothing on the way is a
// symlink or the data directory.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// segmentPattern is one directory of a fullName: the same rule as web's fullName pattern, so a
// name can only ever be a path below the app directory.
var segmentPattern = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$-]*$`)

// fileSegmentPattern is one part of a file name in a draft. Only plain ASCII: that refuses by
// construction "..", "%2e%2e", fullwidth dots and every name NFC or NFKC would turn into a
// path trick, backslashes, NUL and hidden names (".trellis…", ".git").
var fileSegmentPattern = regexp.MustCompile(`^[A-Za-z0-9_$][A-Za-z0-9_$.-]*$`)

// editableExts are the files an element is made of (the registry reads these and only these);
// a save replaces them and keeps any other file of the directory.
var editableExts = map[string]bool{".js": true, ".json": true, ".md": true}

// elementDir maps a fullName to its directory below the app directory.
func (a Dir) elementDir(fullName string) (string, error) {
	segs := strings.Split(fullName, ".")
	for _, s := range segs {
		if !segmentPattern.MatchString(s) {
			return "", fmt.Errorf("%w: %q is not an element fullName: use dot-separated names such as services.BackupSvc", ErrBadDraft, fullName)
		}
	}
	root, err := a.appRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(append([]string{root}, segs...)...)
	if data, err := filepath.Abs(a.DataDir); err == nil {
		if real, err := filepath.EvalSymlinks(data); err == nil {
			data = real
		}
		if within(data, dir) || within(dir, data) {
			return "", fmt.Errorf("%w: %s would be inside the data directory %s (or hold it): choose another name", ErrBadDraft, fullName, a.DataDir)
		}
	}
	// Every directory from the app root down must be a real directory: a symlink could send the
	// write anywhere, so none is followed.
	cur := root
	for _, s := range segs {
		cur = filepath.Join(cur, s)
		fi, err := os.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink != 0 || !fi.IsDir() {
			return "", fmt.Errorf("%w: %s is a symlink or a file, not a directory: elements are edited only in real directories of the app", ErrBadDraft, relTo(root, cur))
		}
	}
	return dir, nil
}

// appRoot is the app directory with its own symlinks resolved: the app directory itself is
// trusted, everything below it is checked.
func (a Dir) appRoot() (string, error) {
	abs, err := filepath.Abs(a.Registry.AppDir)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

func relTo(root, p string) string {
	if rel, err := filepath.Rel(root, p); err == nil {
		return filepath.ToSlash(rel)
	}
	return p
}

// checkDraft refuses file names that are not plain relative names inside the element.
func checkDraft(d Draft) error {
	if strings.TrimSpace(d.Definition) == "" {
		return fmt.Errorf("%w: definition (the element's e.json) is required", ErrBadDraft)
	}
	for name := range d.Files {
		if err := checkFileName(name); err != nil {
			return err
		}
	}
	return nil
}

func checkFileName(name string) error {
	if name == "e.json" {
		return fmt.Errorf("%w: e.json is the definition: send it as definition, not among files", ErrBadDraft)
	}
	if len(name) > 255 {
		return fmt.Errorf("%w: file name %.40q… is longer than 255 bytes", ErrBadDraft, name)
	}
	for _, seg := range strings.Split(name, "/") {
		if !fileSegmentPattern.MatchString(seg) || seg == "node_modules" || strings.Contains(seg, "..") {
			return fmt.Errorf("%w: file name %q is not a plain relative name inside the element: use letters, digits, _ $ . - and / between directories (no leading dot, no \"..\", no backslash)", ErrBadDraft, name)
		}
	}
	if !editableExts[path.Ext(name)] {
		return fmt.Errorf("%w: file %q: an element's files are .js, .json and .md files", ErrBadDraft, name)
	}
	return nil
}

// checkInside refuses files that would land inside a nested element's directory, or be written
// through a symlink or over a directory already in the element's directory.
func checkInside(dir string, files map[string]string) error {
	for name := range files {
		if fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(name))); err == nil && fi.IsDir() {
			return fmt.Errorf("%w: file %q is a directory in the element", ErrBadDraft, name)
		}
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			p := filepath.Join(dir, filepath.FromSlash(d))
			fi, err := os.Lstat(p)
			if err != nil {
				continue // not there yet: the save creates it
			}
			if fi.Mode()&fs.ModeSymlink != 0 || !fi.IsDir() {
				return fmt.Errorf("%w: file %q: %s in the element is a symlink or a file, not a directory; files are written only into real directories", ErrBadDraft, name, d)
			}
			if _, err := os.Lstat(filepath.Join(p, "e.json")); err == nil {
				return fmt.Errorf("%w: file %q is inside the nested element directory %s: edit that element instead", ErrBadDraft, name, d)
			}
		}
	}
	return nil
}

// draftTarget checks a draft and the directory it is for, and returns that directory.
func (a Dir) draftTarget(fullName string, d Draft) (string, error) {
	if err := checkDraft(d); err != nil {
		return "", err
	}
	dir, err := a.elementDir(fullName)
	if err != nil {
		return "", err
	}
	return dir, checkInside(dir, d.Files)
}

// draftFiles are the files a draft makes of the element: its files and its e.json.
func draftFiles(d Draft) map[string]string {
	out := make(map[string]string, len(d.Files)+1)
	for k, v := range d.Files {
		out[k] = v
	}
	out["e.json"] = d.Definition
	return out
}

// readElement reads the element's own editable files from disk (e.json included; nested
// elements, hidden names and node_modules excluded; symlinks recorded by their target, never
// followed). exists is false when dir holds no e.json.
func readElement(dir string) (files map[string]string, exists bool, err error) {
	if _, err := os.Lstat(filepath.Join(dir, "e.json")); errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	files = map[string]string{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := relTo(dir, p)
		if p == dir {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if _, err := os.Lstat(filepath.Join(p, "e.json")); err == nil {
				return filepath.SkipDir // a nested element: its own files
			}
			return nil
		}
		if !editableExts[path.Ext(rel)] {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			files[rel] = "symlink:" + target
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[rel] = string(b)
		return nil
	})
	return files, true, err
}

// hasNested names a directory below dir that is an element of its own ("" when none).
func hasNested(dir string) (string, error) {
	found := ""
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || found != "" {
			return err
		}
		if d.IsDir() && p != dir {
			if _, err := os.Lstat(filepath.Join(p, "e.json")); err == nil {
				found = relTo(dir, p)
				return filepath.SkipAll
			}
		}
		return nil
	})
	return found, err
}
