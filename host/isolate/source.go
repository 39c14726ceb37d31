package isolate

import (
	"fmt"
	"maps"
	"reflect"

	"github.com/trellis-run/trellis/host/jsvm"
)

// sanitize returns src ready for the wire without changing the caller's copy: nil elements
// (which gob cannot carry) are left out and definitions are normalized to plain values.
func sanitize(src *jsvm.Source) *jsvm.Source {
	clean := true
	for _, el := range src.Elements {
		if el == nil || !isPlain(any(el.Definition)) && el.Definition != nil {
			clean = false
			break
		}
	}
	if clean {
		return src
	}
	out := *src
	out.Elements = make(map[string]*jsvm.Element, len(src.Elements))
	for name, el := range src.Elements {
		if el == nil {
			continue
		}
		if el.Definition != nil && !isPlain(any(el.Definition)) {
			c := *el
			c.Definition = normalizeMap(el.Definition)
			el = &c
		}
		out.Elements[name] = el
	}
	return &out
}

// delta describes how to turn from into to, element by element. Elements are compared by
// pointer first and by value when the pointers differ, because the host builds a fresh Element
// for every element on every reload even when nothing in it changed.
func delta(from *jsvm.Source, fromVersion uint64, to *jsvm.Source) *loadMsg {
	m := &loadMsg{Base: fromVersion, AppName: to.AppName, Env: to.Env, Timezone: to.Timezone}
	if !maps.Equal(from.Commons, to.Commons) {
		m.CommonsSet, m.Commons = true, to.Commons
	}
	for name, el := range to.Elements {
		old, ok := from.Elements[name]
		if ok && (old == el || reflect.DeepEqual(old, el)) {
			continue
		}
		if m.Put == nil {
			m.Put = make(map[string]*jsvm.Element)
		}
		m.Put[name] = el
	}
	for name := range from.Elements {
		if _, ok := to.Elements[name]; !ok {
			m.Drop = append(m.Drop, name)
		}
	}
	return m
}

// apply builds the Source a loadMsg describes on top of base (the worker's current source,
// at version baseVersion).
func (m *loadMsg) apply(base *jsvm.Source, baseVersion uint64) (*jsvm.Source, error) {
	if m.Full != nil {
		for _, el := range m.Full.Elements {
			restoreEmpty(el.Definition)
		}
		return m.Full, nil
	}
	for _, el := range m.Put {
		restoreEmpty(el.Definition)
	}
	if base == nil || m.Base != baseVersion {
		return nil, fmt.Errorf("%w: delta from source version %d, but the worker is at %d", ErrProtocol, m.Base, baseVersion)
	}
	out := &jsvm.Source{AppName: m.AppName, Env: m.Env, Timezone: m.Timezone, Commons: base.Commons}
	if m.CommonsSet {
		out.Commons = m.Commons
	}
	out.Elements = make(map[string]*jsvm.Element, len(base.Elements)+len(m.Put))
	maps.Copy(out.Elements, base.Elements)
	for _, name := range m.Drop {
		delete(out.Elements, name)
	}
	maps.Copy(out.Elements, m.Put)
	return out, nil
}
