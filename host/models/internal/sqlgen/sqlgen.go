// Package sqlgen writes the SQL both model backends share: table and column names, the schema
// catalog's statements and diff, and statements for checked queries (models.Plan), with the
// small differences between SQLite and PostgreSQL (placeholders, like, value conversion, column
// types) given by a Dialect. Every name is quoted and every value is a parameter, so no model or
// field name and no filter value can change a statement's meaning.
//
// It owns SQL text only: it must not open connections or run statements (sqlstore runs them),
// so every statement can be checked without a database.
package sqlgen

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/trellis-run/trellis/host/models"
)

// CatalogTable records, per model, the table and every column ever created with its field type:
// SQLite cannot tell Stext from Date by column type, and a column whose field was removed keeps
// its type so adding the field back with another type is caught.
const CatalogTable = "trellis_models"

// Dialect is what the statements need to know of the database. sqlstore.Dialect embeds it, so a
// backend describes its database in one type.
type Dialect interface {
	// Param is the placeholder of the n-th argument (from 1): "?" or "$n".
	Param(n int) string
	// Like is the case-insensitive pattern operator: "LIKE" (SQLite) or "ILIKE" (PostgreSQL).
	Like() string
	// Arg turns a value in the stored value model into a driver argument for field f.
	Arg(f models.Field, v any) (any, error)
	// IDColumn is the primary key's definition after its name; it must hand out ids that are
	// never reused.
	IDColumn() string
	// ColumnType is the column definition of a field (after its quoted name), without NOT NULL.
	ColumnType(f models.Field) string
	// TableOptions follows a CREATE TABLE's column list ("STRICT"), or is "".
	TableOptions() string
}

// Quote makes a quoted identifier ("a""b"); it is the only way names reach SQL text.
func Quote(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// TableName derives a model's table name: a readable part of the fullName and a hash of all of
// it, so any fullName (dots, quotes, unicode, any length) maps to a short, plain, distinct name,
// within PostgreSQL's 63 bytes and distinct even where SQLite ignores case.
func TableName(model string) string {
	var b strings.Builder
	b.WriteString("m_")
	under := false
	for _, r := range strings.ToLower(model) {
		if b.Len() >= 42 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			under = false
		} else if !under {
			b.WriteByte('_')
			under = true
		}
	}
	if !under {
		b.WriteByte('_')
	}
	sum := sha256.Sum256([]byte(model))
	b.WriteString(hex.EncodeToString(sum[:8]))
	return b.String()
}

// Columns is the quoted column list of every field of s, id first.
func Columns(s models.Schema) string {
	fields := s.AllFields()
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = Quote(f.Name)
	}
	return strings.Join(names, ", ")
}

// ReadCatalog selects the stored field list (JSON) of the model given as the one argument.
func ReadCatalog(d Dialect) string {
	return "SELECT fields FROM " + Quote(CatalogTable) + " WHERE model = " + d.Param(1)
}

// WriteCatalog stores a model's entry; its arguments are the fullName, the table name, the field
// list (a JSON field) and the time (a Datetime field).
func WriteCatalog(d Dialect) string {
	return fmt.Sprintf(`INSERT INTO %s (model, tbl, fields, updated_at) VALUES (%s, %s, %s, %s)
		ON CONFLICT (model) DO UPDATE SET fields = excluded.fields, updated_at = excluded.updated_at`,
		Quote(CatalogTable), d.Param(1), d.Param(2), d.Param(3), d.Param(4))
}

// CreateTable is the statement creating s's table.
func CreateTable(d Dialect, s models.Schema) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (%s %s", Quote(TableName(s.Model)), Quote(models.IDField), d.IDColumn())
	for _, f := range s.AllFields()[1:] {
		fmt.Fprintf(&b, ", %s %s", Quote(f.Name), d.ColumnType(f))
	}
	b.WriteString(")")
	if opts := d.TableOptions(); opts != "" {
		b.WriteString(" " + opts)
	}
	return b.String()
}

// AddColumn is the statement adding field f to s's table.
func AddColumn(d Dialect, s models.Schema, f models.Field) string {
	return fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", Quote(TableName(s.Model)), Quote(f.Name), d.ColumnType(f))
}

// Diff compares the fields stored for a model with the schema wanted: it returns the fields to
// add, or ErrSchema listing every field whose type changed or whose name clashes with a stored
// one in all but case. stored nil means the table does not exist yet.
func Diff(stored []models.Field, want models.Schema) ([]models.Field, error) {
	byLower := make(map[string]models.Field, len(stored))
	for _, f := range stored {
		byLower[strings.ToLower(f.Name)] = f
	}
	var add []models.Field
	var problems []string
	for _, f := range want.AllFields() {
		old, ok := byLower[strings.ToLower(f.Name)]
		switch {
		case !ok:
			add = append(add, f)
		case old.Name != f.Name:
			problems = append(problems, fmt.Sprintf("field %q clashes with the stored field %q (names differing only in case are one column); use the stored spelling or another name",
				f.Name, old.Name))
		case old.Type != f.Type:
			problems = append(problems, fmt.Sprintf("field %q is stored as %s but now declared %s, which the storage does not convert; change the type back, or declare a new field under another name (the old column keeps its data)",
				f.Name, old.Type, f.Type))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: model %s: %s", models.ErrSchema, want.Model, strings.Join(problems, "; "))
	}
	return add, nil
}

// Merge is the stored field list after adding add: stored fields keep their place, so the
// catalog remembers removed fields.
func Merge(stored, add []models.Field) []models.Field {
	out := make([]models.Field, 0, len(stored)+len(add))
	out = append(out, stored...)
	for _, f := range add {
		out = append(out, models.Field{Name: f.Name, Type: f.Type})
	}
	return out
}

// Args collects statement arguments and hands out their placeholders.
type Args struct {
	d    Dialect
	List []any
}

// NewArgs starts an argument list for d.
func NewArgs(d Dialect) *Args { return &Args{d: d} }

// Add appends v (in the stored value model) as an argument of field f and returns its
// placeholder.
func (a *Args) Add(f models.Field, v any) (string, error) {
	arg, err := a.d.Arg(f, v)
	if err != nil {
		return "", err
	}
	a.List = append(a.List, arg)
	return a.d.Param(len(a.List)), nil
}

// Insert is the statement inserting r (fields in the order of s) and returning the stored row.
func Insert(d Dialect, s models.Schema, r models.Row) (string, []any, error) {
	args := NewArgs(d)
	var cols, params []string
	for _, f := range s.AllFields() {
		v, ok := r[f.Name]
		if !ok {
			continue
		}
		p, err := args.Add(f, v)
		if err != nil {
			return "", nil, err
		}
		cols = append(cols, Quote(f.Name))
		params = append(params, p)
	}
	table := Quote(TableName(s.Model))
	if len(cols) == 0 {
		return fmt.Sprintf("INSERT INTO %s DEFAULT VALUES RETURNING %s", table, Columns(s)), nil, nil
	}
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) RETURNING %s", table, strings.Join(cols, ", "), strings.Join(params, ", "), Columns(s)), args.List, nil
}

// Update is the statement applying patch to row id and returning the row after; patch must not
// be empty and must not hold "id".
func Update(d Dialect, s models.Schema, id int64, patch models.Row) (string, []any, error) {
	args := NewArgs(d)
	var sets []string
	for _, f := range s.AllFields() {
		v, ok := patch[f.Name]
		if !ok || f.Name == models.IDField {
			continue
		}
		p, err := args.Add(f, v)
		if err != nil {
			return "", nil, err
		}
		sets = append(sets, Quote(f.Name)+" = "+p)
	}
	idField, _ := s.Field(models.IDField)
	p, err := args.Add(idField, id)
	if err != nil {
		return "", nil, err
	}
	return fmt.Sprintf("UPDATE %s SET %s WHERE %s = %s RETURNING %s", Quote(TableName(s.Model)), strings.Join(sets, ", "),
		Quote(models.IDField), p, Columns(s)), args.List, nil
}

// ByID is "SELECT|DELETE ... WHERE id = ?" returning every column: verb is "SELECT" or "DELETE".
func ByID(d Dialect, s models.Schema, verb string) string {
	table := Quote(TableName(s.Model))
	if verb == "DELETE" {
		return fmt.Sprintf("DELETE FROM %s WHERE %s = %s RETURNING %s", table, Quote(models.IDField), d.Param(1), Columns(s))
	}
	return fmt.Sprintf("SELECT %s FROM %s WHERE %s = %s", Columns(s), table, Quote(models.IDField), d.Param(1))
}

// Select is the count statement and the page statement of a plan, sharing one argument list.
func Select(d Dialect, s models.Schema, p models.Plan) (count, page string, args []any, err error) {
	a := NewArgs(d)
	where, err := where(d, a, p.Where)
	if err != nil {
		return "", "", nil, err
	}
	table := Quote(TableName(s.Model))
	order := make([]string, len(p.Order))
	for i, o := range p.Order {
		if o.Desc {
			order[i] = Quote(o.Field.Name) + " DESC NULLS LAST"
		} else {
			order[i] = Quote(o.Field.Name) + " ASC NULLS FIRST"
		}
	}
	count = fmt.Sprintf("SELECT COUNT(*) FROM %s WHERE %s", table, where)
	page = fmt.Sprintf("SELECT %s FROM %s WHERE %s ORDER BY %s LIMIT %d OFFSET %d", Columns(s), table, where, strings.Join(order, ", "), p.Limit, p.Offset)
	return count, page, a.List, nil
}

func where(d Dialect, a *Args, c models.Cond) (string, error) {
	switch c.Op {
	case models.OpAnd, models.OpOr:
		if len(c.Terms) == 0 {
			if c.Op == models.OpAnd {
				return "1=1", nil
			}
			return "1=0", nil
		}
		parts := make([]string, len(c.Terms))
		for i, t := range c.Terms {
			sql, err := where(d, a, t)
			if err != nil {
				return "", err
			}
			parts[i] = sql
		}
		if len(parts) == 1 {
			return parts[0], nil
		}
		return "(" + strings.Join(parts, " "+strings.ToUpper(c.Op)+" ") + ")", nil
	}
	col := Quote(c.Field.Name)
	switch c.Op {
	case models.OpIsNull:
		if b, _ := c.Value.(bool); b {
			return col + " IS NULL", nil
		}
		return col + " IS NOT NULL", nil
	case models.OpLike:
		p, err := a.Add(models.Field{Name: c.Field.Name, Type: models.TypeLtext}, c.Value)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf(`%s %s %s ESCAPE '\'`, col, d.Like(), p), nil
	case models.OpIn, models.OpNin:
		list, _ := c.Value.([]any)
		var params []string
		hasNull := false
		for _, v := range list {
			if v == nil {
				hasNull = true
				continue
			}
			p, err := a.Add(c.Field, v)
			if err != nil {
				return "", err
			}
			params = append(params, p)
		}
		in := col + " IN (" + strings.Join(params, ", ") + ")"
		if c.Op == models.OpIn {
			switch {
			case len(params) == 0 && hasNull:
				return col + " IS NULL", nil
			case len(params) == 0:
				return "1=0", nil
			case hasNull:
				return "(" + col + " IS NULL OR " + in + ")", nil
			}
			return in, nil
		}
		notIn := col + " NOT IN (" + strings.Join(params, ", ") + ")"
		switch {
		case len(params) == 0 && hasNull:
			return col + " IS NOT NULL", nil
		case len(params) == 0:
			return "1=1", nil
		case hasNull:
			return "(" + col + " IS NOT NULL AND " + notIn + ")", nil
		}
		return "(" + col + " IS NULL OR " + notIn + ")", nil
	}
	p, err := a.Add(c.Field, c.Value)
	if err != nil {
		return "", err
	}
	switch c.Op {
	case models.OpEq:
		return col + " = " + p, nil
	case models.OpNe:
		return "(" + col + " IS NULL OR " + col + " <> " + p + ")", nil
	case models.OpGt:
		return col + " > " + p, nil
	case models.OpGte:
		return col + " >= " + p, nil
	case models.OpLt:
		return col + " < " + p, nil
	case models.OpLte:
		return col + " <= " + p, nil
	}
	return "", fmt.Errorf("%w: unknown operator %q", models.ErrInvalidValue, c.Op)
}

// Present lists the fields of s that r gives, in schema order, and a key naming that set, so
// bulk inserts can group rows giving the same fields under one statement.
func Present(s models.Schema, fields []models.Field, r models.Row) ([]models.Field, string) {
	var out []models.Field
	key := make([]byte, 0, len(fields))
	for i, f := range fields {
		if _, ok := r[f.Name]; ok {
			out = append(out, f)
			key = append(key, byte(i), byte(i>>8))
		}
	}
	return out, string(key)
}

// InsertRows is an INSERT of k rows, each giving fields, without RETURNING: bulk inserts know
// the values they wrote. fields must not be empty when k > 1.
func InsertRows(d Dialect, s models.Schema, fields []models.Field, k int) string {
	table := Quote(TableName(s.Model))
	if len(fields) == 0 {
		return fmt.Sprintf("INSERT INTO %s DEFAULT VALUES", table)
	}
	cols := make([]string, len(fields))
	for i, f := range fields {
		cols[i] = Quote(f.Name)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "INSERT INTO %s (%s) VALUES ", table, strings.Join(cols, ", "))
	n := 0
	for row := range k {
		if row > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for i := range fields {
			if i > 0 {
				b.WriteString(", ")
			}
			n++
			b.WriteString(d.Param(n))
		}
		b.WriteByte(')')
	}
	return b.String()
}
