package host

// Editing elements over HTTP (docs/reference.md §6), as a facade: package host/appdir checks,
// validates and writes an element's directory; the host holds one edit at a time and makes the
// saved version current through hot reload.

import (
	"context"
	"errors"
	"fmt"

	"github.com/trellis-run/trellis/host/appdir"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/vocab"
)

// appDir is the app directory as the editor changes it.
func (h *Host) appDir() appdir.Dir {
	return appdir.Dir{Registry: RegistryOptions(h.cfg.AppDir), DataDir: h.cfg.DataDir}
}

// ElementVersion is the version of an app element as it is on disk ("" and false when the app
// directory holds no such element: a built-in, an inherited one, or none).
func (h *Host) ElementVersion(fullName string) (string, bool) {
	return h.appDir().Version(fullName)
}

// SaveElement validates the app with the draft (definition: the e.json text; files: the other
// files) applied and, when it has no problem, writes the element's directory in one step; with
// hot reload on, the new version is current when it returns. version is the version the editor
// started from ("" = create only, unless force). It answers {fullName, version, created, current}.
func (h *Host) SaveElement(ctx context.Context, fullName, definition string, files map[string]string, version string, force bool) (map[string]any, error) {
	h.editMu.Lock()
	defer h.editMu.Unlock()
	saved, err := h.appDir().Save(fullName, appdir.Draft{Definition: definition, Files: files}, version, force)
	if err != nil {
		return nil, err
	}
	current := h.reloadNow(ctx)
	if el := h.Snapshot().Elements[fullName]; current && (el == nil || el.Origin != registry.OriginApp || !sameFiles(el.Files, saved.Files)) {
		current = false // a reload raced with another change: say so rather than claim it runs
	}
	return map[string]any{"fullName": fullName, "version": saved.Version, "created": saved.Created, "current": current}, nil
}

// SetElementField sets one top-level field of an app element's e.json, keeping the rest of its
// text (the console's enable and disable of task templates and listeners), and saves it as
// SaveElement does. A built-in or inherited element must be overridden in the app first.
func (h *Host) SetElementField(ctx context.Context, fullName, key string, value any) (map[string]any, error) {
	h.editMu.Lock()
	defer h.editMu.Unlock()
	saved, err := h.appDir().SetField(fullName, key, value)
	if errors.Is(err, appdir.ErrNoElement) {
		if el := h.Snapshot().Elements[fullName]; el != nil && el.Origin != registry.OriginApp {
			return nil, vocab.Errorf(vocab.CodeConflict, "%s is a %s element, not one of this app's: override it in the app to change %s", fullName, el.Origin, key)
		}
		return nil, fmt.Errorf("%w: no element %q in the app directory", ErrNotFound, fullName)
	}
	if err != nil {
		return nil, err
	}
	current := h.reloadNow(ctx)
	if el := h.Snapshot().Elements[fullName]; current && (el == nil || !sameFiles(el.Files, saved.Files)) {
		current = false
	}
	return map[string]any{"fullName": fullName, "version": saved.Version, "current": current}, nil
}

// DeleteElement removes an app element's directory. Deleting an app element that overrides a
// built-in or an inherited element brings that one back.
func (h *Host) DeleteElement(ctx context.Context, fullName, version string, force bool) (map[string]any, error) {
	h.editMu.Lock()
	defer h.editMu.Unlock()
	if err := h.appDir().Delete(fullName, version, force); errors.Is(err, appdir.ErrNoElement) {
		if el := h.Snapshot().Elements[fullName]; el != nil && el.Origin != registry.OriginApp {
			return nil, vocab.Errorf(vocab.CodeConflict, "%s is a %s element, not one of this app's: only the app's own elements can be deleted (override it instead)", fullName, el.Origin)
		}
		return nil, fmt.Errorf("%w: no element %q in the app directory", ErrNotFound, fullName)
	} else if err != nil {
		return nil, err
	}
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
