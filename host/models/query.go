package models

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Paging limits of Query.
const (
	DefaultPageSize = 20
	MaxPageSize     = 1000
	// MaxOffset bounds the rows before a page, (Page-1)×PageSize; no table holds 2^40 rows.
	MaxOffset = 1 << 40
	// MaxInValues bounds an in/nin list, so one filter stays within every database's limit on
	// statement parameters.
	MaxInValues = 1000
)

// Filter operators.
const (
	OpEq     = "eq"
	OpNe     = "ne"
	OpGt     = "gt"
	OpGte    = "gte"
	OpLt     = "lt"
	OpLte    = "lte"
	OpIn     = "in"
	OpNin    = "nin"
	OpLike   = "like"
	OpIsNull = "isNull"
	// OpAnd and OpOr combine Terms.
	OpAnd = "and"
	OpOr  = "or"
)

var comparisons = []string{OpEq, OpNe, OpGt, OpGte, OpLt, OpLte, OpIn, OpNin, OpLike, OpIsNull}

// Query selects rows of one model.
//
// Filter is a JSON-ish object, all terms ANDed:
//
//	{"status": "paid"}                       equality (null -> IS NULL)
//	{"qty": {"gt": 3, "lte": 10}}            ops: eq ne gt gte lt lte in nin like isNull(bool)
//	{"or": [{...}, {...}]}                   any of ({"and": [...]} also works)
//
// Values in filters are Coerce'd with the field's type and Location (wrong type ->
// ErrInvalidValue). ne and nin are true for NULL (as `row.x !== v` is in JavaScript); in/nin
// lists may hold null. like is case-insensitive, with % and _ as wildcards and \ escaping them,
// and applies to Stext and Ltext; Boolean takes eq, ne, in, nin and isNull; JSON takes isNull
// (and eq/ne null) only.
//
// OrderBy: "field" or "-field", comma-separated ("-dueDate,id"); default "id"; ties are broken by
// id, and NULL sorts before every value (so last in descending order). Unknown field ->
// ErrUnknownField. Page from 1 (0 = 1), PageSize default 20 (0 = 20), max 1000 (larger ->
// ErrInvalidValue).
type Query struct {
	Filter   map[string]any
	OrderBy  string
	Page     int
	PageSize int
	// Location reads datetime strings in Filter ("YYYY-MM-DD HH:mm:ss") and the date of datetime
	// values compared with Date fields; the app's timezone. nil means UTC.
	Location *time.Location
}

// Page is one page of a query: the rows, and how many match in all.
type Page struct {
	TotalCount int64
	Rows       []Row
}

// Cond is a checked filter term, the form of Query.Filter that backends turn into SQL: either a
// comparison (Op one of eq ne gt gte lt lte in nin like isNull, with Field and Value) or a
// combination (Op and/or, with Terms). Value is in the stored value model; for in/nin a []any
// that may hold nil; for isNull a bool; for like a string pattern. eq/ne with nil are turned
// into isNull. An "and" with no Terms is true.
type Cond struct {
	Op    string
	Field Field
	Value any
	Terms []Cond
}

// Order is one key of a checked orderBy.
type Order struct {
	Field Field
	Desc  bool
}

// Plan is a checked Query: what a backend executes.
type Plan struct {
	Where  Cond
	Order  []Order // always ends with id, so pages are stable
	Limit  int
	Offset int
}

// PlanQuery checks q against s and turns it into a Plan, reporting every problem at once, so the
// host may refuse a bad query before it reaches a store and every store reads queries alike.
func PlanQuery(s Schema, q Query) (Plan, error) {
	var errs []error
	where, err := ParseFilter(s, q.Filter, q.Location)
	if err != nil {
		errs = append(errs, err)
	}
	order, err := ParseOrderBy(s, q.OrderBy)
	if err != nil {
		errs = append(errs, err)
	}
	page, size := q.Page, q.PageSize
	if page == 0 {
		page = 1
	}
	if size == 0 {
		size = DefaultPageSize
	}
	if page < 0 {
		errs = append(errs, fmt.Errorf("%w: page is %d; pages count from 1", ErrInvalidValue, q.Page))
	}
	if size < 0 || size > MaxPageSize {
		errs = append(errs, fmt.Errorf("%w: pageSize is %d; give 1 to %d", ErrInvalidValue, q.PageSize, MaxPageSize))
	} else if page-1 > MaxOffset/size {
		// (page-1)×size wraps around for a page near 2^63: page 9223372036854775806 answered the
		// first page.
		errs = append(errs, fmt.Errorf("%w: page %d is past any row: with pageSize %d, page must be at most %d", ErrInvalidValue, q.Page, size, MaxOffset/size+1))
	}
	if err := errors.Join(errs...); err != nil {
		return Plan{}, err
	}
	return Plan{Where: where, Order: order, Limit: size, Offset: (page - 1) * size}, nil
}

// ParseOrderBy reads "field,-other" into keys, adding id last when it is not there.
func ParseOrderBy(s Schema, orderBy string) ([]Order, error) {
	var out []Order
	var errs []error
	seen := map[string]bool{}
	hasID := false
	if strings.TrimSpace(orderBy) != "" {
		for _, part := range strings.Split(orderBy, ",") {
			name := strings.TrimSpace(part)
			desc := false
			if strings.HasPrefix(name, "-") {
				desc, name = true, strings.TrimSpace(name[1:])
			} else if strings.HasPrefix(name, "+") {
				name = strings.TrimSpace(name[1:])
			}
			if name == "" {
				errs = append(errs, fmt.Errorf("%w: orderBy %q has an empty key; write field names separated by commas, - for descending", ErrInvalidValue, orderBy))
				continue
			}
			f, ok := s.Field(name)
			if !ok {
				errs = append(errs, fmt.Errorf("orderBy: %w", unknownField(s, name)))
				continue
			}
			if f.Type == TypeJSON {
				errs = append(errs, fmt.Errorf("%w: orderBy: field %q is JSON, which has no order; sort by another field", ErrInvalidValue, name))
				continue
			}
			if seen[name] {
				errs = append(errs, fmt.Errorf("%w: orderBy %q names %q twice", ErrInvalidValue, orderBy, name))
				continue
			}
			seen[name] = true
			hasID = hasID || name == IDField
			out = append(out, Order{Field: f, Desc: desc})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if !hasID {
		id, _ := s.Field(IDField)
		out = append(out, Order{Field: id})
	}
	return out, nil
}

// ParseFilter checks a Query.Filter and coerces its values (datetime strings read in loc),
// reporting every problem at once.
func ParseFilter(s Schema, filter map[string]any, loc *time.Location) (Cond, error) {
	if loc == nil {
		loc = time.UTC
	}
	return parseObject(s, filter, loc, "filter", 0)
}

const maxFilterDepth = 32

func parseObject(s Schema, obj map[string]any, loc *time.Location, path string, depth int) (Cond, error) {
	if depth > maxFilterDepth {
		return Cond{}, fmt.Errorf("%w: %s is nested more than %d levels deep", ErrInvalidValue, path, maxFilterDepth)
	}
	and := Cond{Op: OpAnd}
	var errs []error
	for _, key := range sortedKeys(obj) {
		v := obj[key]
		if key == OpOr || key == OpAnd {
			c, err := parseCombination(s, key, v, loc, path+"."+key, depth)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			and.Terms = append(and.Terms, c)
			continue
		}
		f, ok := s.Field(key)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: %w", path, unknownField(s, key)))
			continue
		}
		ops, isOps := v.(map[string]any)
		if !isOps || f.Type == TypeJSON && !looksLikeOps(ops) {
			if isOps {
				errs = append(errs, fmt.Errorf("%w: %s: field %q is JSON; filter it with {\"isNull\": true|false} only", ErrInvalidValue, path, key))
				continue
			}
			c, err := comparison(f, OpEq, v, loc)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", path, err))
				continue
			}
			and.Terms = append(and.Terms, c)
			continue
		}
		if len(ops) == 0 {
			errs = append(errs, fmt.Errorf("%w: %s: field %q has an empty operator object; use one of %s", ErrInvalidValue, path, key, strings.Join(comparisons, ", ")))
			continue
		}
		for _, op := range sortedKeys(ops) {
			c, err := comparison(f, op, ops[op], loc)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", path, err))
				continue
			}
			and.Terms = append(and.Terms, c)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Cond{}, err
	}
	return and, nil
}

// looksLikeOps tells an operator object from a JSON object: every key is an operator.
func looksLikeOps(m map[string]any) bool {
	if len(m) == 0 {
		return false
	}
	for k := range m {
		if !isComparison(k) {
			return false
		}
	}
	return true
}

func isComparison(op string) bool {
	for _, c := range comparisons {
		if op == c {
			return true
		}
	}
	return false
}

func parseCombination(s Schema, op string, v any, loc *time.Location, path string, depth int) (Cond, error) {
	var items []any
	switch t := v.(type) {
	case []any:
		items = t
	case []map[string]any:
		for _, m := range t {
			items = append(items, m)
		}
	default:
		return Cond{}, fmt.Errorf("%w: %s is %s; give a list of filter objects", ErrInvalidValue, path, describe(v))
	}
	if len(items) == 0 {
		return Cond{}, fmt.Errorf("%w: %s is empty; give at least one filter object", ErrInvalidValue, path)
	}
	out := Cond{Op: op}
	var errs []error
	for i, item := range items {
		m, ok := item.(map[string]any)
		if !ok {
			errs = append(errs, fmt.Errorf("%w: %s[%d] is %s; give a filter object", ErrInvalidValue, path, i, describe(item)))
			continue
		}
		c, err := parseObject(s, m, loc, fmt.Sprintf("%s[%d]", path, i), depth+1)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out.Terms = append(out.Terms, c)
	}
	if err := errors.Join(errs...); err != nil {
		return Cond{}, err
	}
	return out, nil
}

// comparison checks one operator on one field and coerces its value.
func comparison(f Field, op string, v any, loc *time.Location) (Cond, error) {
	if !isComparison(op) {
		return Cond{}, fmt.Errorf("%w: field %q: unknown operator %q; use one of %s", ErrInvalidValue, f.Name, op, strings.Join(comparisons, ", "))
	}
	refuse := func(why string) (Cond, error) {
		return Cond{}, fmt.Errorf("%w: field %q is %s: operator %q %s", ErrInvalidValue, f.Name, f.Type, op, why)
	}
	switch op {
	case OpIsNull:
		b, ok := v.(bool)
		if !ok {
			return Cond{}, fmt.Errorf("%w: field %q: isNull takes true or false; got %s", ErrInvalidValue, f.Name, describe(v))
		}
		return Cond{Op: OpIsNull, Field: f, Value: b}, nil
	case OpEq, OpNe:
		if v == nil {
			return Cond{Op: OpIsNull, Field: f, Value: op == OpEq}, nil
		}
		if f.Type == TypeJSON {
			return refuse("is not available; JSON fields take isNull only")
		}
	case OpGt, OpGte, OpLt, OpLte:
		if f.Type == TypeJSON || f.Type == TypeBoolean {
			return refuse("is not available; use eq, ne, in, nin or isNull")
		}
		if v == nil {
			return refuse("cannot compare with null; use isNull")
		}
	case OpLike:
		if f.Type != TypeStext && f.Type != TypeLtext {
			return refuse("is for text fields only")
		}
		str, ok := v.(string)
		if !ok {
			return Cond{}, fmt.Errorf("%w: field %q: like takes a string pattern; got %s", ErrInvalidValue, f.Name, describe(v))
		}
		if err := checkText(str); err != nil {
			return Cond{}, fmt.Errorf("%w: field %q: like: %s", ErrInvalidValue, f.Name, err)
		}
		return Cond{Op: OpLike, Field: f, Value: str}, nil
	case OpIn, OpNin:
		if f.Type == TypeJSON {
			return refuse("is not available; JSON fields take isNull only")
		}
		list, ok := v.([]any)
		if !ok {
			return Cond{}, fmt.Errorf("%w: field %q: %s takes a list of values; got %s", ErrInvalidValue, f.Name, op, describe(v))
		}
		if len(list) > MaxInValues {
			return Cond{}, fmt.Errorf("%w: field %q: %s has %d values; give at most %d", ErrInvalidValue, f.Name, op, len(list), MaxInValues)
		}
		vals := make([]any, len(list))
		var errs []error
		for i, e := range list {
			c, err := CoerceValue(f, e, loc)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s[%d]: %w", op, i, err))
				continue
			}
			vals[i] = c
		}
		if err := errors.Join(errs...); err != nil {
			return Cond{}, err
		}
		return Cond{Op: op, Field: f, Value: vals}, nil
	}
	c, err := CoerceValue(f, v, loc)
	if err != nil {
		return Cond{}, err
	}
	return Cond{Op: op, Field: f, Value: c}, nil
}
