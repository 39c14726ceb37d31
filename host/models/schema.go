package models

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Field types, spelled as in a model's e.json (models.Meta's enum), so a declaration reads the
// same in JSON and in Go.
const (
	TypeAutoInt  = "AutoInt"
	TypeStext    = "Stext"
	TypeLtext    = "Ltext"
	TypeInteger  = "Integer"
	TypeNumeric  = "Numeric"
	TypeBoolean  = "Boolean"
	TypeDate     = "Date"
	TypeDatetime = "Datetime"
	TypeJSON     = "JSON"
)

// IDField is the name of every model's primary key, an AutoInt the store assigns.
const IDField = "id"

// StextMaxLen is the longest Stext value in characters (runes), as in JitAi's short text and
// PostgreSQL's varchar(255); longer text belongs in an Ltext field.
const StextMaxLen = 255

// types lists every field type, in the order the editor shows them.
var types = []string{TypeAutoInt, TypeStext, TypeLtext, TypeInteger, TypeNumeric, TypeBoolean, TypeDate, TypeDatetime, TypeJSON}

// fieldName is models.Meta's pattern for a field name: it keeps names usable as column names and
// as JavaScript property names without quoting.
var fieldName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// reserved names are filter keywords ({"or": [...]}, {"and": [...]}); a field so named could not
// be filtered on.
var reserved = map[string]bool{"or": true, "and": true}

// Field is one declared field of a model.
type Field struct {
	Name  string `json:"name"`
	Title string `json:"title,omitempty"`
	Type  string `json:"type"`
}

// Schema is one model: Model is its fullName ("models.OrderModel"). Every model has the primary
// key "id" (AutoInt), whether or not Fields declares it; another AutoInt field is ErrSchema.
type Schema struct {
	Model  string
	Fields []Field
}

// idField is the implicit primary key of a model that does not declare it.
var idField = Field{Name: IDField, Title: "ID", Type: TypeAutoInt}

// SchemaOf reads a model element's merged e.json ("fields": [{name, title, type}]), so the host
// and the stores agree on one checked field list. The result lists "id" first, declared or not.
// Every problem is reported at once, each wrapping ErrSchema.
func SchemaOf(fullName string, definition map[string]any) (Schema, error) {
	s := Schema{Model: fullName}
	var errs []error
	raw, ok := definition["fields"]
	var list []any
	switch v := raw.(type) {
	case nil:
		if ok {
			errs = append(errs, fmt.Errorf("%w: model %s: \"fields\" is null; give a list of {name, title, type}", ErrSchema, fullName))
		}
	case []any:
		list = v
	case []map[string]any:
		for _, m := range v {
			list = append(list, m)
		}
	default:
		errs = append(errs, fmt.Errorf("%w: model %s: \"fields\" is %s; give a list of {name, title, type}", ErrSchema, fullName, describe(raw)))
	}
	for i, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			errs = append(errs, fmt.Errorf("%w: model %s: fields[%d] is %s; give an object {name, title, type}", ErrSchema, fullName, i, describe(item)))
			continue
		}
		var f Field
		for key, v := range m {
			str, isStr := v.(string)
			switch key {
			case "name", "title", "type":
				if !isStr {
					errs = append(errs, fmt.Errorf("%w: model %s: fields[%d].%s is %s; give a string", ErrSchema, fullName, i, key, describe(v)))
					continue
				}
			}
			switch key {
			case "name":
				f.Name = str
			case "title":
				f.Title = str
			case "type":
				f.Type = str
			}
			// Other keys (descriptions, editor hints) belong to the editor, not to storage.
		}
		s.Fields = append(s.Fields, f)
	}
	// Validated before the implicit id is added, so fields[i] in messages is the e.json's i.
	if err := s.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return Schema{}, err
	}
	if _, declared := s.declared(IDField); !declared {
		s.Fields = append([]Field{idField}, s.Fields...)
	}
	return s, nil
}

// Validate checks the model name and the field list (names, types, duplicates, the one AutoInt),
// reporting every problem at once; every Store method relies on a valid Schema.
func (s Schema) Validate() error {
	var errs []error
	if strings.TrimSpace(s.Model) == "" {
		errs = append(errs, fmt.Errorf("%w: the model has no fullName; give it one such as \"models.OrderModel\"", ErrSchema))
	} else if strings.ContainsRune(s.Model, 0) {
		errs = append(errs, fmt.Errorf("%w: model %q: the fullName contains a NUL character", ErrSchema, s.Model))
	}
	seen := map[string]string{}
	if _, ok := s.declared(IDField); !ok {
		seen[IDField] = IDField // the implicit primary key
	}
	for i, f := range s.Fields {
		switch {
		case f.Name == "":
			errs = append(errs, fmt.Errorf("%w: model %s: fields[%d] has no name", ErrSchema, s.Model, i))
		case !fieldName.MatchString(f.Name):
			errs = append(errs, fmt.Errorf("%w: model %s: field name %q is not allowed; use letters, digits and _ (not first a digit)", ErrSchema, s.Model, f.Name))
		case reserved[strings.ToLower(f.Name)]:
			errs = append(errs, fmt.Errorf("%w: model %s: field name %q is a filter keyword; choose another name", ErrSchema, s.Model, f.Name))
		}
		if f.Name != "" {
			low := strings.ToLower(f.Name)
			if prev, dup := seen[low]; dup {
				errs = append(errs, fmt.Errorf("%w: model %s: field %q is declared twice (as %q and %q; names differing only in case count as one); remove one", ErrSchema, s.Model, f.Name, prev, f.Name))
			}
			seen[low] = f.Name
		}
		if !knownType(f.Type) {
			errs = append(errs, fmt.Errorf("%w: model %s: field %q has type %q; use one of %s", ErrSchema, s.Model, f.Name, f.Type, strings.Join(types, ", ")))
			continue
		}
		if f.Name == IDField && f.Type != TypeAutoInt {
			errs = append(errs, fmt.Errorf("%w: model %s: field \"id\" is the primary key and must be AutoInt, not %s; rename your field", ErrSchema, s.Model, f.Type))
		}
		if f.Type == TypeAutoInt && f.Name != IDField {
			errs = append(errs, fmt.Errorf("%w: model %s: field %q is AutoInt, but only the primary key \"id\" may be; use Integer", ErrSchema, s.Model, f.Name))
		}
	}
	return errors.Join(errs...)
}

func knownType(t string) bool {
	for _, k := range types {
		if t == k {
			return true
		}
	}
	return false
}

// declared finds a field among those the schema lists, without the implicit id.
func (s Schema) declared(name string) (Field, bool) {
	for _, f := range s.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// Field finds a field by its exact name; "id" is always found, declared or not, because every
// model has it.
func (s Schema) Field(name string) (Field, bool) {
	if f, ok := s.declared(name); ok {
		return f, true
	}
	if name == IDField {
		return idField, true
	}
	return Field{}, false
}

// AllFields lists every field a row has: "id" first, then the declared ones in order. Stores use
// it for their column lists, so a Schema written by hand without "id" still works.
func (s Schema) AllFields() []Field {
	out := make([]Field, 0, len(s.Fields)+1)
	id, _ := s.Field(IDField)
	out = append(out, id)
	for _, f := range s.Fields {
		if f.Name != IDField {
			out = append(out, f)
		}
	}
	return out
}
