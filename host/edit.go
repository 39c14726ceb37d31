package host

// Editing elements over HTTP (docs/reference.md §6): saving and deleting an app element's
// directory, and validating a draft on an overlay of the app — a temporary copy with the draft
// applied — so that nothing is written until the whole app, draft included, passes the same
// checks `trellis check` runs.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/vocab"
)

// Sentinels of editing; each carries its code, so the HTTP layer needs no list of them.
var (
	// ErrBadDraft: a draft the host refuses before validating it (a hostile file name, e.json
	// among the files, a fullName that cannot be a directory).
	ErrBadDraft = vocab.Sentinel(vocab.CodeInvalidArgument, "host: bad draft")
	// ErrEditConflict: the element on disk is not the version the editor started from.
	ErrEditConflict = vocab.Sentinel(vocab.CodeConflict, "host: element changed on disk")
)

// Draft is an element as the editor holds it: the text of its e.json and its other files by
// relative slash path ("index.js", "lib/util.js").
type Draft struct {
	Definition string
	Files      map[string]string
}

// ConflictError is a save or delete refused because the element on disk is not the version
// the editor started from; it carries what is on disk now, so the editor can show both.
type ConflictError struct {
	FullName string
	msg      string
	// Version is the version on disk ("" when the element does not exist there).
	Version string
	// Files are the element's files on disk, e.json included (nil when it does not exist).
	Files map[string]string
}

func (e *ConflictError) Error() string     { return e.msg }
func (e *ConflictError) ErrorCode() string { return vocab.CodeConflict }
func (e *ConflictError) Is(t error) bool   { return t == ErrEditConflict }
func (e *ConflictError) ErrorDetails() any {
	return map[string]any{"fullName": e.FullName, "version": e.Version, "files": e.Files}
}

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
func (h *Host) elementDir(fullName string) (string, error) {
	segs := strings.Split(fullName, ".")
	for _, s := range segs {
		if !segmentPattern.MatchString(s) {
			return "", fmt.Errorf("%w: %q is not an element fullName: use dot-separated names such as services.BackupSvc", ErrBadDraft, fullName)
		}
	}
	root, err := h.appRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(append([]string{root}, segs...)...)
	if data, err := filepath.Abs(h.cfg.DataDir); err == nil {
		if real, err := filepath.EvalSymlinks(data); err == nil {
			data = real
		}
		if within(data, dir) || within(dir, data) {
			return "", fmt.Errorf("%w: %s would be inside the data directory %s (or hold it): choose another name", ErrBadDraft, fullName, h.cfg.DataDir)
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
func (h *Host) appRoot() (string, error) {
	abs, err := filepath.Abs(h.cfg.AppDir)
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

// draftFiles are the files a draft makes of the element: its files and its e.json.
func draftFiles(d Draft) map[string]string {
	out := make(map[string]string, len(d.Files)+1)
	for k, v := range d.Files {
		out[k] = v
	}
	out["e.json"] = d.Definition
	return out
}

// VersionOf is the version of an element's files (e.json included): a hash of their names and
// contents, so any change on disk, by the editor or by hand, changes it.
func VersionOf(files map[string]string) string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	sum := sha256.New()
	for _, n := range names {
		fmt.Fprintf(sum, "%d:%s\x00%d:", len(n), n, len(files[n]))
		sum.Write([]byte(files[n]))
	}
	return hex.EncodeToString(sum.Sum(nil)[:12])
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

// ElementVersion is the version of an app element as it is on disk ("" and false when the app
// directory holds no such element: a built-in, an inherited one, or none).
func (h *Host) ElementVersion(fullName string) (string, bool) {
	dir, err := h.elementDir(fullName)
	if err != nil {
		return "", false
	}
	files, ok, err := readElement(dir)
	if err != nil || !ok {
		return "", false
	}
	return VersionOf(files), true
}

// SaveElement validates the app with the draft (definition: the e.json text; files: the other
// files) applied and, when it has no problem, writes the element's directory in one step; with
// hot reload on, the new version is current when it returns. version is the version the editor
// started from ("" = create only, unless force). It answers {fullName, version, created, current}.
func (h *Host) SaveElement(ctx context.Context, fullName, definition string, files map[string]string, version string, force bool) (map[string]any, error) {
	d := Draft{Definition: definition, Files: files}
	dir, err := h.draftTarget(fullName, d)
	if err != nil {
		return nil, err
	}
	h.editMu.Lock()
	defer h.editMu.Unlock()
	cur, exists, err := readElement(dir)
	if err != nil {
		return nil, fmt.Errorf("host: read %s: %w", fullName, err)
	}
	if err := checkVersion(fullName, cur, exists, version, force, true); err != nil {
		return nil, err
	}
	if _, err := h.overlay(fullName, &d); err != nil {
		return nil, err
	}
	all := draftFiles(d)
	if err := writeElementDir(dir, all); err != nil {
		return nil, fmt.Errorf("host: write %s: %w", fullName, err)
	}
	current := h.reloadNow(ctx)
	if el := h.Snapshot().Elements[fullName]; current && (el == nil || el.Origin != registry.OriginApp || !sameFiles(el.Files, all)) {
		current = false // a reload raced with another change: say so rather than claim it runs
	}
	return map[string]any{"fullName": fullName, "version": VersionOf(all), "created": !exists, "current": current}, nil
}

// DeleteElement removes an app element's directory. Deleting an app element that overrides a
// built-in or an inherited element brings that one back.
func (h *Host) DeleteElement(ctx context.Context, fullName, version string, force bool) (map[string]any, error) {
	dir, err := h.elementDir(fullName)
	if err != nil {
		return nil, err
	}
	h.editMu.Lock()
	defer h.editMu.Unlock()
	cur, exists, err := readElement(dir)
	if err != nil {
		return nil, fmt.Errorf("host: read %s: %w", fullName, err)
	}
	if !exists {
		if el := h.Snapshot().Elements[fullName]; el != nil && el.Origin != registry.OriginApp {
			return nil, vocab.Errorf(vocab.CodeConflict, "%s is a %s element, not one of this app's: only the app's own elements can be deleted (override it instead)", fullName, el.Origin)
		}
		return nil, fmt.Errorf("%w: no element %q in the app directory", ErrNotFound, fullName)
	}
	if err := checkVersion(fullName, cur, exists, version, force, false); err != nil {
		return nil, err
	}
	if nested, _ := hasNested(dir); nested != "" {
		return nil, vocab.Errorf(vocab.CodeConflict, "%s holds the element directory %s: delete the elements inside it first", fullName, nested)
	}
	if _, err := h.overlay(fullName, nil); err != nil {
		return nil, err
	}
	trash, err := os.MkdirTemp(filepath.Dir(dir), ".trellis-trash-")
	if err != nil {
		return nil, err
	}
	// One rename takes the element away whole; the copy under a hidden name, which neither the
	// registry nor the watcher reads, is then removed at leisure.
	if err := os.Rename(dir, filepath.Join(trash, "old")); err != nil {
		_ = os.RemoveAll(trash)
		return nil, err
	}
	_ = syncDir(filepath.Dir(dir))
	_ = os.RemoveAll(trash)
	current := h.reloadNow(ctx)
	out := map[string]any{"fullName": fullName, "deleted": true}
	if el := h.Snapshot().Elements[fullName]; el != nil {
		if el.Origin == registry.OriginApp {
			current = false
		} else {
			out["restored"] = el.Origin
		}
	}
	out["current"] = current
	return out, nil
}

// sameFiles reports whether an element's files in a snapshot are the ones written.
func sameFiles(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// checkVersion holds the editor to the version it read: two editors never silently overwrite
// each other.
func checkVersion(fullName string, cur map[string]string, exists bool, version string, force, create bool) error {
	if force {
		return nil
	}
	conflict := func(msg string) error {
		e := &ConflictError{FullName: fullName, msg: msg}
		if exists {
			e.Version, e.Files = VersionOf(cur), cur
		}
		return e
	}
	switch {
	case version == "" && !exists && create:
		return nil
	case version == "" && create:
		return conflict(fmt.Sprintf("%s already exists: send the version you read (GET /api/elements/%s) to replace it, or ?force=true", fullName, fullName))
	case version == "":
		return conflict(fmt.Sprintf("send the version of %s you read (GET /api/elements/%s) to delete it, or ?force=true", fullName, fullName))
	case !exists:
		return conflict(fmt.Sprintf("%s was deleted since version %s was read", fullName, version))
	case version != VersionOf(cur):
		return conflict(fmt.Sprintf("%s changed since version %s was read: it is now version %s", fullName, version, VersionOf(cur)))
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
func (h *Host) draftTarget(fullName string, d Draft) (string, error) {
	if err := checkDraft(d); err != nil {
		return "", err
	}
	dir, err := h.elementDir(fullName)
	if err != nil {
		return "", err
	}
	return dir, checkInside(dir, d.Files)
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

// reloadNow makes hot reload read the app now, so the saved version is current when the save
// answers; false when the host does not watch the app (it runs the new version after a restart).
func (h *Host) reloadNow(ctx context.Context) bool {
	w := h.watcher.Load()
	if w == nil {
		return false
	}
	_, err := w.Reload(ctx)
	return err == nil
}

// overlay validates the app as it would be with the draft of fullName applied (nil: with the
// element removed), on a temporary copy: the app directory is not touched. It returns the
// snapshot of that app, or a *registry.ValidationError with every problem.
func (h *Host) overlay(fullName string, d *Draft) (*registry.Snapshot, error) {
	root, err := h.appRoot()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "trellis-draft-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := h.copyApp(root, tmp); err != nil {
		return nil, fmt.Errorf("host: copy the app to validate the draft: %w", err)
	}
	edir := filepath.Join(append([]string{tmp}, strings.Split(fullName, ".")...)...)
	if err := removeEditable(edir); err != nil {
		return nil, err
	}
	if d != nil {
		// elementDir checked the app's directories down to the element: the copy's are the same.
		if err := os.MkdirAll(edir, 0o755); err != nil {
			return nil, err
		}
		for name, text := range draftFiles(*d) {
			if err := writeInside(edir, name, text, false); err != nil {
				return nil, err
			}
		}
	}
	snap, err := registry.Load(RegistryOptions(tmp))
	var ve *registry.ValidationError
	if errors.As(err, &ve) {
		// Problems name files as `trellis check --app DIR` would: those of extended apps
		// relative to the app directory, not to the copy.
		for i, p := range ve.Problems {
			if strings.HasPrefix(p.File, "../") {
				ve.Problems[i].File = relTo(root, filepath.Join(tmp, filepath.FromSlash(p.File)))
			}
		}
		return nil, ve
	}
	return snap, err
}

// copyApp copies what the registry reads of the app at root into dst: app.json and the .js,
// .json and .md files outside hidden directories and node_modules. extends paths are made
// relative to the copy, so they still reach the same apps.
func (h *Host) copyApp(root, dst string) error {
	// The data directory is skipped wherever it is: inside the app under a plain name too.
	data, _ := filepath.Abs(h.cfg.DataDir)
	if real, err := filepath.EvalSymlinks(data); err == nil {
		data = real
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		out := filepath.Join(dst, rel)
		if strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || p == data {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(out, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if filepath.IsAbs(target) && within(root, target) {
				rt, _ := filepath.Rel(root, target)
				target = filepath.Join(dst, rt)
			}
			return os.Symlink(target, out)
		case !d.Type().IsRegular() || !editableExts[filepath.Ext(p)]:
			return nil
		}
		if info, err := d.Info(); err == nil && info.Size() > registry.MaxFileSize {
			// The registry refuses it by its size without reading it (file_too_large): a sparse
			// file of that size says the same without copying it.
			f, err := os.Create(out)
			if err != nil {
				return err
			}
			if err := f.Truncate(info.Size()); err != nil {
				_ = f.Close()
				return err
			}
			return f.Close()
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if rel == "app.json" {
			b = rebaseExtends(b, root, dst)
		}
		return os.WriteFile(out, b, 0o644)
	})
}

// rebaseExtends rewrites app.json's extends entries to reach the same apps from the copy.
// app.json is returned unchanged when it has no extends or does not parse (the registry then
// reports it as it would on the app itself).
func rebaseExtends(b []byte, root, dst string) []byte {
	m, err := vocab.DecodeJSONObject(b)
	if err != nil {
		return b
	}
	list, _ := m["extends"].([]any)
	if len(list) == 0 {
		return b
	}
	for i, e := range list {
		s, ok := e.(string)
		if !ok || s == "" || filepath.IsAbs(s) {
			continue
		}
		if rel, err := filepath.Rel(dst, filepath.Join(root, filepath.FromSlash(s))); err == nil {
			list[i] = filepath.ToSlash(rel)
		}
	}
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return b
	}
	return out
}

// removeEditable deletes the element's editable files from a copy (nested elements stay).
func removeEditable(dir string) error {
	files, _, err := readElement(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for name := range files {
		if err := os.Remove(filepath.Join(dir, filepath.FromSlash(name))); err != nil {
			return err
		}
	}
	_ = os.Remove(filepath.Join(dir, "e.json"))
	return nil
}
