package modelstest

import (
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/models"
)

func schema(model string, fields ...models.Field) models.Schema {
	return models.Schema{Model: model, Fields: fields}
}

func field(name, typ string) models.Field { return models.Field{Name: name, Type: typ} }

func testEnsureIdempotent(t *testing.T, b *bundle) {
	s := b.ensured(t, b.model)
	r := b.insert(t, s, map[string]any{"title": "kept", "qty": 1})
	for range 3 {
		require.NoError(t, b.st.Ensure(b.ctx, s))
	}
	// The same model written by hand, without the implicit id, is the same schema.
	byHand := models.Schema{Model: b.model}
	for _, f := range s.Fields {
		if f.Name != models.IDField {
			byHand.Fields = append(byHand.Fields, models.Field{Name: f.Name, Type: f.Type})
		}
	}
	require.NoError(t, b.st.Ensure(b.ctx, byHand))
	got, err := b.st.Get(b.ctx, byHand, r["id"].(int64))
	require.NoError(t, err)
	requireRow(t, r, got, "Ensure again keeps the rows")

	// Several hosts loading the same app at once.
	fresh := b.orders(t, b.model+"_concurrent")
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Go(func() { errs[i] = b.st.Ensure(b.ctx, fresh) })
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	b.insert(t, fresh, map[string]any{"qty": 1})
	require.EqualValues(t, 1, b.count(t, fresh))
}

func testEnsureAddsFields(t *testing.T, b *bundle) {
	v1 := schema(b.model, field("title", models.TypeStext), field("qty", models.TypeInteger))
	v2 := schema(b.model, field("title", models.TypeStext), field("qty", models.TypeInteger),
		field("extra", models.TypeInteger), field("label", models.TypeStext), field("when", models.TypeDatetime))
	require.NoError(t, b.st.Ensure(b.ctx, v1))
	r1 := b.insert(t, v1, map[string]any{"title": "old", "qty": 1})
	id1 := r1["id"].(int64)

	require.NoError(t, b.st.Ensure(b.ctx, v2))
	got, err := b.st.Get(b.ctx, v2, id1)
	require.NoError(t, err)
	requireRow(t, models.Row{"id": id1, "title": "old", "qty": int64(1), "extra": nil, "label": nil, "when": nil}, got,
		"an old row reads NULL in new fields")
	r2 := b.insert(t, v2, map[string]any{"title": "new", "extra": 5, "when": "2024-01-01 00:00:00"})
	id2 := r2["id"].(int64)
	require.Equal(t, []string{"new"}, b.titles(t, v2, models.Query{Filter: map[string]any{"extra": 5}}))

	// The app drops the field again: its column stays, unused.
	require.NoError(t, b.st.Ensure(b.ctx, v1))
	got, err = b.st.Get(b.ctx, v1, id2)
	require.NoError(t, err)
	requireRow(t, models.Row{"id": id2, "title": "new", "qty": nil}, got, "a removed field is not read")
	r3 := b.insert(t, v1, map[string]any{"title": "during v1", "qty": 3})
	_, err = b.st.Insert(b.ctx, v1, models.Row{"extra": int64(1)})
	require.ErrorIs(t, err, models.ErrUnknownField)

	// ...and adds it back: the data was never dropped.
	require.NoError(t, b.st.Ensure(b.ctx, v2))
	got, err = b.st.Get(b.ctx, v2, id2)
	require.NoError(t, err)
	require.Equal(t, int64(5), got["extra"])
	got, err = b.st.Get(b.ctx, v2, r3["id"].(int64))
	require.NoError(t, err)
	require.Nil(t, got["extra"])
	require.EqualValues(t, 3, b.count(t, v2))
}

func testEnsureRefusesChangedType(t *testing.T, b *bundle) {
	v1 := schema(b.model, field("qty", models.TypeInteger), field("tmp", models.TypeInteger))
	require.NoError(t, b.st.Ensure(b.ctx, v1))
	r := b.insert(t, v1, map[string]any{"qty": 7})

	err := b.st.Ensure(b.ctx, schema(b.model, field("qty", models.TypeStext)))
	require.ErrorIs(t, err, models.ErrSchema)
	for _, part := range []string{`"qty"`, "Integer", "Stext", "another name"} {
		require.Contains(t, err.Error(), part, "the message says what changed and what to do")
	}

	// A change refused stores nothing, not even the new field declared beside it.
	err = b.st.Ensure(b.ctx, schema(b.model, field("qty", models.TypeNumeric), field("added", models.TypeInteger)))
	require.ErrorIs(t, err, models.ErrSchema)
	_, err = b.st.Query(b.ctx, schema(b.model, field("qty", models.TypeInteger), field("added", models.TypeInteger)), models.Query{})
	require.ErrorIs(t, err, models.ErrSchema, "the added field has no column")

	// Names differing in case only are one column.
	err = b.st.Ensure(b.ctx, schema(b.model, field("Qty", models.TypeInteger)))
	require.ErrorIs(t, err, models.ErrSchema)
	require.Contains(t, err.Error(), `"Qty"`)

	// A removed field keeps its type: adding it back as another type is still a change.
	require.NoError(t, b.st.Ensure(b.ctx, schema(b.model, field("qty", models.TypeInteger))))
	err = b.st.Ensure(b.ctx, schema(b.model, field("qty", models.TypeInteger), field("tmp", models.TypeBoolean)))
	require.ErrorIs(t, err, models.ErrSchema)
	require.Contains(t, err.Error(), `"tmp"`)

	// The model still works as it was.
	require.NoError(t, b.st.Ensure(b.ctx, v1))
	got, err := b.st.Get(b.ctx, v1, r["id"].(int64))
	require.NoError(t, err)
	requireRow(t, r, got)
	b.insert(t, v1, map[string]any{"qty": 8, "tmp": 1})
	require.EqualValues(t, 2, b.count(t, v1))

	// A bad schema is refused before any SQL.
	for _, bad := range []models.Schema{
		{Model: ""},
		schema(b.model+"_bad", field("x", "Money")),
		schema(b.model+"_bad", field("no-dash", models.TypeStext)),
		schema(b.model+"_bad", field("n", models.TypeAutoInt)),
		schema(b.model+"_bad", field("x", models.TypeStext), field("X", models.TypeStext)),
	} {
		require.ErrorIs(t, b.st.Ensure(b.ctx, bad), models.ErrSchema, "%+v", bad)
	}
}

func testWriteBeforeEnsure(t *testing.T, b *bundle) {
	s := b.orders(t, b.model) // never ensured
	_, err := b.st.Insert(b.ctx, s, models.Row{"qty": int64(1)})
	require.ErrorIs(t, err, models.ErrSchema)
	require.Contains(t, err.Error(), "Ensure")
	_, err = b.st.InsertMany(b.ctx, s, []models.Row{{"qty": int64(1)}})
	require.ErrorIs(t, err, models.ErrSchema)
	_, err = b.st.Get(b.ctx, s, 1)
	require.ErrorIs(t, err, models.ErrSchema)
	_, _, err = b.st.Update(b.ctx, s, 1, models.Row{"qty": int64(2)})
	require.ErrorIs(t, err, models.ErrSchema)
	_, err = b.st.Delete(b.ctx, s, 1)
	require.ErrorIs(t, err, models.ErrSchema)
	_, err = b.st.Query(b.ctx, s, models.Query{})
	require.ErrorIs(t, err, models.ErrSchema)
}

func testOddModelNames(t *testing.T, b *bundle) {
	names := []string{
		`models.Odd"Quote_` + b.run,
		`models.x_` + b.run + `"; DROP TABLE trellis_models; --`,
		`models.x_` + b.run + `'); DELETE FROM "trellis_models"; --`,
		"models.Ünïcødé.日本_" + b.run,
		"models." + strings.Repeat("VeryLong", 40) + "_" + b.run,
		"models." + strings.Repeat("VeryLong", 40) + "_" + b.run + "_2", // same long prefix
		"models.a.b.c.d_" + b.run,
		"models.a_b_c_d_" + b.run, // the same readable part as a.b.c.d
		"models.Case_" + b.run,
		"models.CASE_" + b.run, // differs only in case
		"sqlite_master_" + b.run,
		" models.spaces " + b.run + " ",
	}
	schemas := make([]models.Schema, len(names))
	for i, name := range names {
		schemas[i] = b.ensured(t, name)
		for j := 0; j <= i; j++ {
			b.insert(t, schemas[i], map[string]any{"title": "row of " + strconv.Itoa(i), "qty": j})
		}
	}
	for i, s := range schemas {
		require.EqualValues(t, i+1, b.count(t, s), "model %q has only its own rows", s.Model)
		require.NoError(t, b.st.Ensure(b.ctx, s), "Ensure again %q", s.Model)
		p, err := b.st.Query(b.ctx, s, models.Query{Filter: map[string]any{"qty": i}})
		require.NoError(t, err)
		require.Len(t, p.Rows, 1)
		_, _, err = b.st.Update(b.ctx, s, p.Rows[0]["id"].(int64), models.Row{"qty": int64(100)})
		require.NoError(t, err)
	}
	// The catalog survived the names.
	b.ensured(t, b.model+"_after")
}

func testSchemaIsolation(t *testing.T, b *bundle) {
	a := b.ensured(t, b.model+"_a")
	c := b.ensured(t, b.model+"_c")
	r := b.insert(t, a, map[string]any{"qty": 1})
	require.Zero(t, b.count(t, c))
	_, err := b.st.Delete(b.ctx, c, r["id"].(int64))
	require.ErrorIs(t, err, models.ErrNotFound, "the same id in another model is another row")
	_, err = b.st.Get(b.ctx, a, r["id"].(int64))
	require.NoError(t, err)
}
