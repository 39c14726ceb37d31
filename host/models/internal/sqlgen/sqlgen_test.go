package sqlgen_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/models"
	"github.com/trellis-run/trellis/host/models/internal/sqlgen"
)

var plain = regexp.MustCompile(`^m_[a-z0-9_]*_[0-9a-f]{16}$`)

func TestTableName(t *testing.T) {
	t.Parallel()
	names := []string{
		"models.OrderModel", "models.ordermodel", "models.ORDERMODEL", `models.x"; DROP TABLE y; --`,
		"models.Ünïcødé.日本", strings.Repeat("models.VeryLongName", 20), strings.Repeat("models.VeryLongName", 20) + "2",
		"models.a.b", "models.a_b", "", "___",
	}
	seen := map[string]string{}
	for _, n := range names {
		tbl := sqlgen.TableName(n)
		require.Regexp(t, plain, tbl, "%q", n)
		require.LessOrEqual(t, len(tbl), 63, "within PostgreSQL's identifier limit")
		require.Equal(t, tbl, sqlgen.TableName(n), "deterministic")
		lower := strings.ToLower(tbl)
		prev, dup := seen[lower]
		require.False(t, dup, "%q and %q share table %s", n, prev, tbl)
		seen[lower] = n
	}
	require.True(t, strings.HasPrefix(sqlgen.TableName("models.OrderModel"), "m_models_ordermodel_"), "readable")
}

func TestQuote(t *testing.T) {
	t.Parallel()
	require.Equal(t, `"a"`, sqlgen.Quote("a"))
	require.Equal(t, `"a""; DROP"`, sqlgen.Quote(`a"; DROP`))
}

func TestDiff(t *testing.T) {
	t.Parallel()
	s := func(fields ...models.Field) models.Schema { return models.Schema{Model: "models.X", Fields: fields} }
	id := models.Field{Name: "id", Title: "ID", Type: models.TypeAutoInt}
	qty := models.Field{Name: "qty", Type: models.TypeInteger}
	note := models.Field{Name: "note", Type: models.TypeStext}

	add, err := sqlgen.Diff(nil, s(qty))
	require.NoError(t, err)
	require.Equal(t, []models.Field{id, qty}, add, "a new table gets every field")

	add, err = sqlgen.Diff([]models.Field{id, qty}, s(qty, note))
	require.NoError(t, err)
	require.Equal(t, []models.Field{note}, add)

	add, err = sqlgen.Diff([]models.Field{id, qty, note}, s(qty))
	require.NoError(t, err)
	require.Empty(t, add, "a removed field is left alone")

	_, err = sqlgen.Diff([]models.Field{id, qty, note}, s(models.Field{Name: "qty", Type: models.TypeNumeric}, models.Field{Name: "Note", Type: models.TypeStext}))
	require.ErrorIs(t, err, models.ErrSchema)
	require.Contains(t, err.Error(), `field "qty" is stored as Integer but now declared Numeric`)
	require.Contains(t, err.Error(), `field "Note" clashes with the stored field "note"`)

	require.Equal(t, []models.Field{id, qty, note}, sqlgen.Merge([]models.Field{id, qty}, []models.Field{{Name: "note", Title: "titles are not stored", Type: models.TypeStext}}))
}

// question is a dialect with "?" placeholders that passes values through and names columns by
// their field type, so statements read plainly; dollar numbers its placeholders.
type question struct{}

func (question) Param(int) string                       { return "?" }
func (question) Like() string                           { return "LIKE" }
func (question) Arg(_ models.Field, v any) (any, error) { return v, nil }
func (question) IDColumn() string                       { return "PK" }
func (question) ColumnType(f models.Field) string       { return f.Type }
func (question) TableOptions() string                   { return "STRICT" }

type dollar struct{ question }

func (dollar) Param(n int) string { return "$" + strconv.Itoa(n) }

var _ sqlgen.Dialect = question{}

func TestSelect(t *testing.T) {
	t.Parallel()
	s := models.Schema{Model: "models.X", Fields: []models.Field{{Name: "qty", Type: models.TypeInteger}, {Name: "t", Type: models.TypeStext}}}
	cases := []struct {
		filter map[string]any
		where  string
		args   []any
	}{
		{nil, "1=1", nil},
		{map[string]any{"qty": 1}, `"qty" = ?`, []any{int64(1)}},
		{map[string]any{"qty": map[string]any{"ne": 1}}, `("qty" IS NULL OR "qty" <> ?)`, []any{int64(1)}},
		{map[string]any{"qty": map[string]any{"in": []any{1, 2}}}, `"qty" IN (?, ?)`, []any{int64(1), int64(2)}},
		{map[string]any{"qty": map[string]any{"in": []any{1, nil}}}, `("qty" IS NULL OR "qty" IN (?))`, []any{int64(1)}},
		{map[string]any{"qty": map[string]any{"in": []any{}}}, `1=0`, nil},
		{map[string]any{"qty": map[string]any{"nin": []any{1}}}, `("qty" IS NULL OR "qty" NOT IN (?))`, []any{int64(1)}},
		{map[string]any{"qty": map[string]any{"nin": []any{1, nil}}}, `("qty" IS NOT NULL AND "qty" NOT IN (?))`, []any{int64(1)}},
		{map[string]any{"qty": map[string]any{"nin": []any{nil}}}, `"qty" IS NOT NULL`, nil},
		{map[string]any{"qty": map[string]any{"nin": []any{}}}, `1=1`, nil},
		{map[string]any{"t": map[string]any{"like": "a%"}}, `"t" LIKE ? ESCAPE '\'`, []any{"a%"}},
		{map[string]any{"qty": map[string]any{"gte": 1, "lt": 5}}, `("qty" >= ? AND "qty" < ?)`, []any{int64(1), int64(5)}},
		{map[string]any{"or": []any{map[string]any{"qty": 1}, map[string]any{"t": "x", "qty": nil}}},
			`("qty" = ? OR ("qty" IS NULL AND "t" = ?))`, []any{int64(1), "x"}},
	}
	for _, tc := range cases {
		plan, err := models.PlanQuery(s, models.Query{Filter: tc.filter, OrderBy: "-qty", Page: 2, PageSize: 10})
		require.NoError(t, err)
		count, page, args, err := sqlgen.Select(question{}, s, plan)
		require.NoError(t, err)
		table := sqlgen.Quote(sqlgen.TableName(s.Model))
		require.Equal(t, `SELECT COUNT(*) FROM `+table+` WHERE `+tc.where, count, "%v", tc.filter)
		require.Equal(t, `SELECT "id", "qty", "t" FROM `+table+` WHERE `+tc.where+` ORDER BY "qty" DESC NULLS LAST, "id" ASC NULLS FIRST LIMIT 10 OFFSET 10`, page)
		require.Equal(t, tc.args, args, "%v", tc.filter)
	}
}

func TestStatements(t *testing.T) {
	t.Parallel()
	s := models.Schema{Model: "models.X", Fields: []models.Field{{Name: "qty", Type: models.TypeInteger}, {Name: "t", Type: models.TypeStext}}}
	table := sqlgen.Quote(sqlgen.TableName(s.Model))
	d := dollar{}

	q, args, err := sqlgen.Insert(d, s, models.Row{"t": "x", "qty": int64(2)})
	require.NoError(t, err)
	require.Equal(t, `INSERT INTO `+table+` ("qty", "t") VALUES ($1, $2) RETURNING "id", "qty", "t"`, q)
	require.Equal(t, []any{int64(2), "x"}, args)
	q, args, err = sqlgen.Insert(d, s, models.Row{})
	require.NoError(t, err)
	require.Equal(t, `INSERT INTO `+table+` DEFAULT VALUES RETURNING "id", "qty", "t"`, q)
	require.Empty(t, args)

	q, args, err = sqlgen.Update(d, s, 7, models.Row{"t": nil})
	require.NoError(t, err)
	require.Equal(t, `UPDATE `+table+` SET "t" = $1 WHERE "id" = $2 RETURNING "id", "qty", "t"`, q)
	require.Equal(t, []any{nil, int64(7)}, args)

	require.Equal(t, `INSERT INTO `+table+` ("qty", "t") VALUES ($1, $2), ($3, $4)`, sqlgen.InsertRows(d, s, s.Fields, 2))
	require.Equal(t, `CREATE TABLE IF NOT EXISTS `+table+` ("id" PK, "qty" Integer, "t" Stext) STRICT`, sqlgen.CreateTable(d, s))
	require.Equal(t, `ALTER TABLE `+table+` ADD COLUMN "t" Stext`, sqlgen.AddColumn(d, s, s.Fields[1]))

	require.Equal(t, `SELECT fields FROM "trellis_models" WHERE model = $1`, sqlgen.ReadCatalog(d))
	require.Contains(t, sqlgen.WriteCatalog(d), `VALUES ($1, $2, $3, $4)`)
	require.Equal(t, `SELECT "id", "qty", "t" FROM `+table+` WHERE "id" = $1`, sqlgen.ByID(d, s, "SELECT"))
	require.Equal(t, `DELETE FROM `+table+` WHERE "id" = $1 RETURNING "id", "qty", "t"`, sqlgen.ByID(d, s, "DELETE"))
}
