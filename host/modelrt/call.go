package modelrt

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/trellis-run/trellis/host/vocab"

	"github.com/trellis-run/trellis/host/models"
)

// Call serves JavaScript: method is one of Methods, args as the JS call gave them. Every method
// takes positional arguments or one object of named arguments (docs/reference.md §2):
//
//	create(row)                                  the one object is the row
//	get(id)                  get({id})           id: a whole number or a string of digits
//	update(id, patch)        update({id, patch})
//	save(row)                                    the one object is the row
//	delete(id)               delete({id})
//	query(filter, orderBy, page, pageSize)       query({filter, orderBy, page, pageSize})
//
// It returns plain values: rows as models.Present gives them, and for query
// map{"totalCount": int64, "rowDatas": []any}.
func (r *Runtime) Call(ctx context.Context, model, method string, args []any, c Caller) (any, error) {
	if _, _, err := r.lookup(model); err != nil {
		return nil, coded(err)
	}
	var (
		out map[string]any
		err error
	)
	switch method {
	case "create", "save":
		var row map[string]any
		if row, err = rowArg(method, args); err != nil {
			return nil, coded(err)
		}
		if method == "create" {
			out, err = r.Create(ctx, model, row, c)
		} else {
			out, err = r.Save(ctx, model, row, c)
		}
	case "get", "delete":
		var id int64
		if id, err = idArg(method, args); err != nil {
			return nil, coded(err)
		}
		if method == "get" {
			out, err = r.Get(ctx, model, id)
		} else {
			out, err = r.Delete(ctx, model, id, c)
		}
	case "update":
		id, patch, aerr := updateArgs(args)
		if aerr != nil {
			return nil, coded(aerr)
		}
		out, err = r.Update(ctx, model, id, patch, c)
	case "query":
		q, aerr := queryArgs(args)
		if aerr != nil {
			return nil, coded(aerr)
		}
		out, err = r.Query(ctx, model, q)
	default:
		return nil, coded(fmt.Errorf("%w: %s has no method %q; its methods are %s", ErrUnknownMethod, model, method, strings.Join(Methods, ", ")))
	}
	if out == nil {
		return nil, err
	}
	// A write whose later steps failed still returns its row to Go callers; JavaScript gets the
	// error thrown.
	return out, err
}

// rowArg reads the one row object of create and save.
func rowArg(method string, args []any) (map[string]any, error) {
	if len(args) != 1 {
		return nil, invalidArg("%s takes one argument, the row object; got %d arguments", method, len(args))
	}
	row, ok := args[0].(map[string]any)
	if !ok {
		return nil, invalidArg("%s needs (row): row must be an object, got %s", method, vocab.Describe(args[0]))
	}
	return row, nil
}

// idArg reads get(id), get({id}), delete(id), delete({id}).
func idArg(method string, args []any) (int64, error) {
	if len(args) != 1 {
		return 0, invalidArg("%s takes one argument, the id (or {id: 42}); got %d arguments", method, len(args))
	}
	v := args[0]
	if named, ok := v.(map[string]any); ok {
		if err := onlyKeys(method, named, "id"); err != nil {
			return 0, err
		}
		if v, ok = named["id"]; !ok {
			return 0, invalidArg("%s({id}) needs id, such as %s({id: 42})", method, method)
		}
	}
	id, err := parseID(v)
	if err != nil {
		return 0, invalidArg("%s needs (id): %v", method, err)
	}
	return id, nil
}

// updateArgs reads update(id, patch) and update({id, patch}).
func updateArgs(args []any) (int64, map[string]any, error) {
	var idv, patchv any
	switch {
	case len(args) == 2:
		idv, patchv = args[0], args[1]
	case len(args) == 1:
		named, ok := args[0].(map[string]any)
		if !ok {
			return 0, nil, invalidArg("update needs (id, patch) or ({id, patch}); got one argument, %s", vocab.Describe(args[0]))
		}
		if err := onlyKeys("update", named, "id", "patch"); err != nil {
			return 0, nil, err
		}
		var hasID, hasPatch bool
		idv, hasID = named["id"]
		patchv, hasPatch = named["patch"]
		if !hasID || !hasPatch {
			return 0, nil, invalidArg("update({id, patch}) needs both id and patch, such as update({id: 42, patch: {status: \"paid\"}})")
		}
	default:
		return 0, nil, invalidArg("update needs (id, patch) or ({id, patch}); got %d arguments", len(args))
	}
	id, err := parseID(idv)
	if err != nil {
		return 0, nil, invalidArg("update needs (id, patch): %v", err)
	}
	patch, ok := patchv.(map[string]any)
	if !ok {
		return 0, nil, invalidArg("update needs (id, patch): patch must be an object, got %s", vocab.Describe(patchv))
	}
	return id, patch, nil
}

// queryKeys are query's argument names, in positional order.
var queryKeys = []string{"filter", "orderBy", "page", "pageSize"}

// queryArgs reads query(), query({filter, orderBy, page, pageSize}) and
// query(filter, orderBy, page, pageSize). One object must be the named form: a bare filter
// such as query({status: "paid"}) is refused with a message showing the named form, since a
// field called "page" would otherwise make the two forms ambiguous.
func queryArgs(args []any) (models.Query, error) {
	var q models.Query
	vals := make([]any, len(queryKeys))
	switch {
	case len(args) > len(queryKeys):
		return q, invalidArg("query takes at most %d arguments (filter, orderBy, page, pageSize) or one object {filter, orderBy, page, pageSize}; got %d", len(queryKeys), len(args))
	case len(args) == 1:
		switch a := args[0].(type) {
		case nil:
		case map[string]any:
			if err := onlyKeys("query", a, queryKeys...); err != nil {
				return q, fmt.Errorf("%w (to filter, write query({filter: {...}}))", err)
			}
			for i, k := range queryKeys {
				vals[i] = a[k]
			}
		default:
			return q, invalidArg("query needs one object {filter, orderBy, page, pageSize}, got %s", vocab.Describe(a))
		}
	default:
		copy(vals, args)
	}
	if vals[0] != nil {
		f, ok := vals[0].(map[string]any)
		if !ok {
			return q, invalidArg("query: filter must be an object such as {status: \"paid\"}, got %s", vocab.Describe(vals[0]))
		}
		q.Filter = f
	}
	if vals[1] != nil {
		s, ok := vals[1].(string)
		if !ok {
			return q, invalidArg("query: orderBy must be a string such as \"-createdAt,id\", got %s", vocab.Describe(vals[1]))
		}
		q.OrderBy = s
	}
	for i, dst := range []*int{&q.Page, &q.PageSize} {
		v := vals[2+i]
		if v == nil {
			continue
		}
		n, err := wholeNumber(v)
		if err != nil || n < 0 || n > math.MaxInt32 {
			return q, invalidArg("query: %s must be a whole number such as 1 (0 or null for the default), got %s", queryKeys[2+i], show(v))
		}
		*dst = int(n)
	}
	return q, nil
}

// onlyKeys refuses named arguments the method does not take.
func onlyKeys(method string, named map[string]any, allowed ...string) error {
	var extra []string
	for k := range named {
		if !slices.Contains(allowed, k) {
			extra = append(extra, k)
		}
	}
	if len(extra) == 0 {
		return nil
	}
	sort.Strings(extra)
	return invalidArg("%s takes the named arguments {%s}; unknown: %s", method, strings.Join(allowed, ", "), strings.Join(extra, ", "))
}

// parseID reads a row id: a whole number greater than 0, or a string of its digits (as ids come
// from URLs and form fields).
func parseID(v any) (int64, error) {
	n, err := wholeNumber(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("id must be a whole number greater than 0 (or a string of its digits), got %s", show(v))
	}
	return n, nil
}

// maxExact is the largest integer a float64 (a JS number) holds exactly.
const maxExact = 1 << 53

// wholeNumber reads an integer given as a number or a string of digits.
func wholeNumber(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case int:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > maxExact {
			return 0, fmt.Errorf("not a whole number")
		}
		return int64(x), nil
	case json.Number:
		return x.Int64()
	case string:
		if x == "" || len(x) > 19 || strings.TrimLeft(x, "0123456789") != "" {
			return 0, fmt.Errorf("not a string of digits")
		}
		return strconv.ParseInt(x, 10, 64)
	}
	return 0, fmt.Errorf("not a number")
}

// show writes a value for an error message: strings quoted, numbers as written, anything else
// by its kind.
func show(v any) string {
	switch x := v.(type) {
	case string:
		if len(x) > 40 {
			x = x[:40] + "..."
		}
		return fmt.Sprintf("%q (a string)", x)
	case int64, int, int32, float64, json.Number:
		return fmt.Sprintf("%v (a number)", x)
	case bool:
		return fmt.Sprintf("%v (a boolean)", x)
	}
	return vocab.Describe(v)
}
