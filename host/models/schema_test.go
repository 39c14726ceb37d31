package models_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/models"
)

func fieldsDef(items ...any) map[string]any { return map[string]any{"fields": items} }

func f(name, typ string) map[string]any {
	return map[string]any{"name": name, "title": name + " title", "type": typ}
}

func TestSchemaOf(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		def   map[string]any
		want  []models.Field // nil when an error is expected
		wants []string       // every one of these in the error
	}{
		{"every type", fieldsDef(f("a", "Stext"), f("b", "Ltext"), f("c", "Integer"), f("d", "Numeric"), f("e", "Boolean"),
			f("g", "Date"), f("h", "Datetime"), f("j", "JSON")), []models.Field{
			{Name: "id", Title: "ID", Type: "AutoInt"}, {Name: "a", Title: "a title", Type: "Stext"}, {Name: "b", Title: "b title", Type: "Ltext"},
			{Name: "c", Title: "c title", Type: "Integer"}, {Name: "d", Title: "d title", Type: "Numeric"}, {Name: "e", Title: "e title", Type: "Boolean"},
			{Name: "g", Title: "g title", Type: "Date"}, {Name: "h", Title: "h title", Type: "Datetime"}, {Name: "j", Title: "j title", Type: "JSON"},
		}, nil},
		{"id declared keeps its place and title", fieldsDef(f("a", "Stext"), f("id", "AutoInt")), []models.Field{
			{Name: "a", Title: "a title", Type: "Stext"}, {Name: "id", Title: "id title", Type: "AutoInt"},
		}, nil},
		{"no fields key", map[string]any{"title": "x"}, []models.Field{{Name: "id", Title: "ID", Type: "AutoInt"}}, nil},
		{"typed list and extra keys", map[string]any{"fields": []map[string]any{{"name": "a", "type": "Integer", "description": "ignored"}}},
			[]models.Field{{Name: "id", Title: "ID", Type: "AutoInt"}, {Name: "a", Type: "Integer"}}, nil},
		{"fields not a list", map[string]any{"fields": "a,b"}, nil, []string{`"fields" is "a,b" (a string)`}},
		{"fields null", map[string]any{"fields": nil}, nil, []string{`"fields" is null`}},
		{"item not an object", fieldsDef("a"), nil, []string{"fields[0]"}},
		{"no name", fieldsDef(map[string]any{"type": "Integer"}), nil, []string{"fields[0] has no name"}},
		{"name not a string", fieldsDef(map[string]any{"name": 3.0, "type": "Integer"}), nil, []string{"fields[0].name is 3 (a number)"}},
		{"bad name", fieldsDef(f("first-name", "Stext")), nil, []string{`"first-name" is not allowed`}},
		{"name starts with digit", fieldsDef(f("1st", "Stext")), nil, []string{`"1st"`}},
		{"reserved name", fieldsDef(f("or", "Stext")), nil, []string{`"or" is a filter keyword`}},
		{"duplicate", fieldsDef(f("a", "Stext"), f("a", "Integer")), nil, []string{`"a" is declared twice`}},
		{"duplicate in case", fieldsDef(f("name", "Stext"), f("Name", "Stext")), nil, []string{`"Name" is declared twice`}},
		{"ID clashes with the implicit id", fieldsDef(f("ID", "Integer")), nil, []string{`"ID" is declared twice`}},
		{"unknown type", fieldsDef(f("a", "Money")), nil, []string{`type "Money"`, "Stext"}},
		{"type missing", fieldsDef(map[string]any{"name": "a"}), nil, []string{`type ""`}},
		{"id not AutoInt", fieldsDef(f("id", "Integer")), nil, []string{`"id" is the primary key and must be AutoInt`}},
		{"second AutoInt", fieldsDef(f("seq", "AutoInt")), nil, []string{`"seq" is AutoInt`, "use Integer"}},
		{"every problem at once", fieldsDef(f("a", "Money"), f("b-c", "Stext"), f("seq", "AutoInt")), nil,
			[]string{`"Money"`, `"b-c"`, `"seq"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := models.SchemaOf("models.Order", tc.def)
			if tc.want == nil {
				require.ErrorIs(t, err, models.ErrSchema)
				for _, w := range tc.wants {
					require.Contains(t, err.Error(), w)
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, "models.Order", s.Model)
			require.Equal(t, tc.want, s.Fields)
		})
	}
	_, err := models.SchemaOf("", fieldsDef())
	require.ErrorIs(t, err, models.ErrSchema)
}

func TestSchemaField(t *testing.T) {
	t.Parallel()
	s := models.Schema{Model: "models.X", Fields: []models.Field{{Name: "qty", Type: models.TypeInteger}}}
	require.NoError(t, s.Validate())
	id, ok := s.Field("id")
	require.True(t, ok, "id exists even when not declared")
	require.Equal(t, models.TypeAutoInt, id.Type)
	q, ok := s.Field("qty")
	require.True(t, ok)
	require.Equal(t, models.TypeInteger, q.Type)
	_, ok = s.Field("Qty")
	require.False(t, ok, "names are exact")
	require.Equal(t, []string{"id", "qty"}, names(s.AllFields()))

	declared := models.Schema{Model: "models.X", Fields: []models.Field{{Name: "qty", Type: models.TypeInteger}, {Name: "id", Type: models.TypeAutoInt}}}
	require.Equal(t, []string{"id", "qty"}, names(declared.AllFields()), "id first, once")
}

func names(fs []models.Field) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Name
	}
	return out
}
