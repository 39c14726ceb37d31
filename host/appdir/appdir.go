package appdir

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/vocab"
)

// Dir is an app directory as the element editor changes it. Its methods do not lock: the
// caller makes one edit at a time read, check and write an element directory.
type Dir struct {
	// Registry is how the app is loaded (host.RegistryOptions): Registry.AppDir is the app
	// directory, and a draft is validated by loading a copy of it with the same options.
	Registry registry.Options
	// DataDir is the host's data directory: no element is written into it (or around it), and
	// no copy of the app holds it.
	DataDir string
}

// Sentinels of editing; each carries its code, so the HTTP layer needs no list of them. Their
// words are those the host has always answered with (the HTTP API shows them), hence "host:".
var (
	// ErrBadDraft: a draft the host refuses before validating it (a hostile file name, e.json
	// among the files, a fullName that cannot be a directory).
	ErrBadDraft = vocab.Sentinel(vocab.CodeInvalidArgument, "host: bad draft")
	// ErrEditConflict: the element on disk is not the version the editor started from.
	ErrEditConflict = vocab.Sentinel(vocab.CodeConflict, "host: element changed on disk")
	// ErrNoElement: Delete found no element of that fullName in the app directory (a built-in,
	// an inherited one, or none); the host says which.
	ErrNoElement = vocab.Sentinel(vocab.CodeNotFound, "host: no element in the app directory")
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

// Saved is what Save wrote.
type Saved struct {
	// Version is the element's new version (VersionOf Files).
	Version string
	// Created is true when the app directory held no such element before.
	Created bool
	// Files are the element's files as written, e.json included.
	Files map[string]string
}

// Version is the version of an app element as it is on disk ("" and false when the app
// directory holds no such element: a built-in, an inherited one, or none).
func (a Dir) Version(fullName string) (string, bool) {
	dir, err := a.elementDir(fullName)
	if err != nil {
		return "", false
	}
	files, ok, err := readElement(dir)
	if err != nil || !ok {
		return "", false
	}
	return VersionOf(files), true
}

// Overlay checks the draft of fullName and validates the app as it would be with the draft
// applied, on a temporary copy: the app directory is not touched. It returns the snapshot of
// that app, or a *registry.ValidationError with every problem.
func (a Dir) Overlay(fullName string, d Draft) (*registry.Snapshot, error) {
	if _, err := a.draftTarget(fullName, d); err != nil {
		return nil, err
	}
	return a.overlay(fullName, &d)
}

// Save validates the app with the draft of fullName applied and, when it has no problem, writes
// the element's directory in one step. version is the version the editor started from ("" =
// create only, unless force): a save from another version is a *ConflictError.
func (a Dir) Save(fullName string, d Draft, version string, force bool) (Saved, error) {
	dir, err := a.draftTarget(fullName, d)
	if err != nil {
		return Saved{}, err
	}
	cur, exists, err := readElement(dir)
	if err != nil {
		return Saved{}, fmt.Errorf("host: read %s: %w", fullName, err)
	}
	if err := checkVersion(fullName, cur, exists, version, force, true); err != nil {
		return Saved{}, err
	}
	if _, err := a.overlay(fullName, &d); err != nil {
		return Saved{}, err
	}
	all := draftFiles(d)
	if err := writeElementDir(dir, all); err != nil {
		return Saved{}, fmt.Errorf("host: write %s: %w", fullName, err)
	}
	return Saved{Version: VersionOf(all), Created: !exists, Files: all}, nil
}

// Delete removes an app element's directory, once the app without it has no problem. An element
// the app directory does not hold is ErrNoElement; one that holds nested elements is a conflict.
func (a Dir) Delete(fullName, version string, force bool) error {
	dir, err := a.elementDir(fullName)
	if err != nil {
		return err
	}
	cur, exists, err := readElement(dir)
	if err != nil {
		return fmt.Errorf("host: read %s: %w", fullName, err)
	}
	if !exists {
		return fmt.Errorf("%w: %s", ErrNoElement, fullName)
	}
	if err := checkVersion(fullName, cur, exists, version, force, false); err != nil {
		return err
	}
	if nested, _ := hasNested(dir); nested != "" {
		return vocab.Errorf(vocab.CodeConflict, "%s holds the element directory %s: delete the elements inside it first", fullName, nested)
	}
	if _, err := a.overlay(fullName, nil); err != nil {
		return err
	}
	trash, err := os.MkdirTemp(filepath.Dir(dir), ".trellis-trash-")
	if err != nil {
		return err
	}
	// One rename takes the element away whole; the copy under a hidden name, which neither the
	// registry nor the watcher reads, is then removed at leisure.
	if err := os.Rename(dir, filepath.Join(trash, "old")); err != nil {
		_ = os.RemoveAll(trash)
		return err
	}
	_ = syncDir(filepath.Dir(dir))
	_ = os.RemoveAll(trash)
	return nil
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
