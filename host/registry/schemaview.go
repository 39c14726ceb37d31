package registry

import "sort"

// What the element editor needs of the registry's own rules, exported as data: the fields an
// element may have (the merged schema of its Meta → Type chain) and, for elements broken on
// disk, the files as they are there. The editor builds its form from Schema, so the form cannot
// drift from what validation accepts.

// FieldSchema is one field of a schema as the registry compiled it (schema.go's field).
type FieldSchema struct {
	Type        string                  `json:"type"`
	Required    bool                    `json:"required,omitempty"`
	Default     any                     `json:"default,omitempty"`
	HasDefault  bool                    `json:"hasDefault,omitempty"`
	Enum        []any                   `json:"enum,omitempty"`
	Items       *FieldSchema            `json:"items,omitempty"`
	Properties  map[string]*FieldSchema `json:"properties,omitempty"`
	Signed      bool                    `json:"signed,omitempty"`
	Meta        string                  `json:"meta,omitempty"`
	Pattern     string                  `json:"pattern,omitempty"`
	Minimum     *float64                `json:"minimum,omitempty"`
	Maximum     *float64                `json:"maximum,omitempty"`
	Title       string                  `json:"title,omitempty"`
	Description string                  `json:"description,omitempty"`
}

// ElementSchema is what an element's e.json may hold: Fields from the schemas of its chain
// (nearest declaration wins; a Meta has none), Universal the keys every element of its layer
// may have (title, description, entry, native; schema for Metas and Types; loader for Types),
// and Inherited the values its Type sets for an instance (which stand in for defaults).
type ElementSchema struct {
	FullName  string                  `json:"fullName"`
	Layer     Layer                   `json:"layer"`
	Fields    map[string]*FieldSchema `json:"fields"`
	Universal map[string]*FieldSchema `json:"universal"`
	Inherited map[string]any          `json:"inherited,omitempty"`
}

func (f *field) export() *FieldSchema {
	if f == nil {
		return nil
	}
	out := &FieldSchema{Type: f.Type, Required: f.Required, Enum: f.Enum, Items: f.Items.export(), Signed: f.Signed,
		Meta: f.Meta, Minimum: f.Minimum, Maximum: f.Maximum, Title: f.Title, Description: f.Description}
	if f.HasDefault {
		out.Default, out.HasDefault = deepCopy(f.Default), true
	}
	if f.Pattern != nil {
		out.Pattern = f.Pattern.String()
	}
	if f.Properties != nil {
		out.Properties = exportFields(f.Properties)
	}
	return out
}

func exportFields(m map[string]*field) map[string]*FieldSchema {
	out := make(map[string]*FieldSchema, len(m))
	for k, f := range m {
		out[k] = f.export()
	}
	return out
}

// Schema returns the schema that applies to the element's e.json, as build (evaluate.go)
// validates it, or nil for an unknown fullName. It reads the sources the element was built
// from, so it is the schema of the version the snapshot serves.
//
// A new element broken on disk (see OnDisk) has no served version; its schema is then the one
// its `type` on disk gives it, when that names a Meta or Type the snapshot has.
func (s *Snapshot) Schema(fullName string) *ElementSchema {
	e := s.Elements[fullName]
	if e == nil {
		e = s.diskElement(fullName)
	}
	if e == nil {
		return nil
	}
	out := &ElementSchema{FullName: fullName, Layer: e.Layer, Fields: map[string]*FieldSchema{}, Universal: map[string]*FieldSchema{}}
	for k, f := range universal {
		if only, limited := layerOnly[k]; limited && !only[e.Layer] {
			continue
		}
		if k == "type" {
			continue // fixed by where the element sits in the chain; not a form field
		}
		out.Universal[k] = f.export()
	}
	// The same merge as evaluation.schemaOf: the Meta's fields, then the Type's over them.
	var chain []*source
	switch e.Layer {
	case LayerType:
		chain = []*source{e.metaSrc, e.src}
	case LayerInstance:
		chain = []*source{e.metaSrc, e.typeSrc}
	}
	for _, src := range chain {
		if src == nil {
			continue
		}
		for k, f := range src.schema {
			out.Fields[k] = f.export()
		}
	}
	if e.Layer == LayerInstance && e.typeSrc != nil {
		for k, v := range e.typeSrc.raw {
			if universal[k] == nil {
				if out.Inherited == nil {
					out.Inherited = map[string]any{}
				}
				out.Inherited[k] = deepCopy(v)
			}
		}
	}
	return out
}

// diskElement places a new element broken on disk under the type its e.json names, enough for
// Schema: nil when it is not new, its e.json does not parse or its type is unknown.
func (s *Snapshot) diskElement(fullName string) *Element {
	src := s.disk[fullName]
	if src == nil || src.raw == nil {
		return nil
	}
	typeName, _ := src.raw["type"].(string)
	t := s.Elements[typeName]
	if t == nil {
		return nil
	}
	switch t.Layer {
	case LayerMeta:
		return &Element{FullName: fullName, Layer: LayerType, src: src, typeSrc: t.src, metaSrc: t.src}
	case LayerType:
		return &Element{FullName: fullName, Layer: LayerInstance, src: src, typeSrc: t.src, metaSrc: t.metaSrc}
	}
	return nil
}

// OnDisk returns the files (e.json included) of an element as they are on disk when they differ
// from the version the snapshot serves because they are broken: the snapshot keeps the last good
// version, or leaves a new broken element out. ok is false when the snapshot serves the disk
// files (or knows no such element).
func (s *Snapshot) OnDisk(fullName string) (files map[string]string, ok bool) {
	src := s.disk[fullName]
	if src == nil {
		return nil, false
	}
	return src.files, true
}

// BrokenOnDisk lists the elements whose files on disk are broken (see OnDisk), by fullName.
func (s *Snapshot) BrokenOnDisk() []string {
	out := make([]string, 0, len(s.disk))
	for n := range s.disk {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
