package appdir

// Validating a draft on an overlay of the app: a temporary copy of what the registry reads, with
// the draft applied, loaded as the host loads the app — so nothing is written until the whole
// app, draft included, passes the checks `trellis check` runs.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/vocab"
)

// overlay validates the app as it would be with the draft of fullName applied (nil: with the
// element removed), on a temporary copy loaded with a.Registry: the app directory is not
// touched. It returns the snapshot of that app, or a *registry.ValidationError with every
// problem.
func (a Dir) overlay(fullName string, d *Draft) (*registry.Snapshot, error) {
	root, err := a.appRoot()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "trellis-draft-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := a.copyApp(root, tmp); err != nil {
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
	opts := a.Registry
	opts.AppDir = tmp
	snap, err := registry.Load(opts)
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
func (a Dir) copyApp(root, dst string) error {
	// The data directory is skipped wherever it is: inside the app under a plain name too.
	data, _ := filepath.Abs(a.DataDir)
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
