package web

// Request helpers: how every route reads path parameters, query parameters and bodies, so a
// wrong one gets the same clear 400 whichever route it was sent to.

import (
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/trellis-run/trellis/host/vocab"
)

// fullNameParam reads a path parameter that must be a fullName (vocab.IsFullName: dot-separated
// names, so it can never smuggle a path — "../", "/", "%2e%2e" — into anything downstream).
func fullNameParam(c echo.Context, param string) (string, error) {
	name := c.Param(param)
	if !vocab.IsFullName(name) {
		return "", errBadRequest("%q is not an element fullName: use dot-separated names such as services.BackupSvc", name)
	}
	return name, nil
}

// idPattern is what a node, request or task id may look like: it starts with a letter, a digit
// or _, so "." and ".." are no ids.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$`)

// maxFunctionName caps a function name in a path, as 512 caps a fullName.
const maxFunctionName = 256

// functionNamePattern is a JS identifier.
var functionNamePattern = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*$`)

func idParam(c echo.Context, name string) (string, error) {
	v := c.Param(name)
	if !idPattern.MatchString(v) {
		return "", errBadRequest("%s %q is not an id: letters, digits and _ . : - only (a letter, digit or _ first), at most 128", name, v)
	}
	return v, nil
}

// maxDepthKey is where the server's limitBody leaves Options.MaxValueDepth for the readers
// below; defaultMaxValueDepth is used where it left none (a handler tested on its own).
const (
	maxDepthKey          = "trellis.maxValueDepth"
	defaultMaxValueDepth = 64
)

// checkDepth refuses a body that nests deeper than the nesting cap allows, reading its bytes once
// before anything decodes them (issue 12: 17 KiB nested 9,000 deep cost the host 914 MiB
// downstream). An argument or kwargs sits one or two levels inside a body (the body's array of
// arguments, a {kwargs} or {args: [...]} envelope), so the body may nest max+2 levels; the layers
// below check each value against max exactly.
func checkDepth(c echo.Context, body []byte) error {
	limit, ok := c.Get(maxDepthKey).(int)
	if !ok || limit <= 0 {
		limit = defaultMaxValueDepth
	}
	if vocab.JSONDeeperThan(body, limit+2) {
		return errBadRequest("the request body nests arrays and objects deeper than %d levels: arguments and kwargs may nest at most %d (the nesting cap, --max-depth)", limit+2, limit)
	}
	return nil
}

func readArgs(c echo.Context) ([]any, error) {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return nil, err
	}
	if err := checkDepth(c, body); err != nil {
		return nil, err
	}
	return vocab.DecodeArgs(body)
}

// readObject reads a JSON object body whose keys are all among allowed (none: {} only).
func readObject(c echo.Context, allowed ...string) (map[string]any, error) {
	return readObjectOr(c, false, fieldsOrNone(allowed))
}

// readOptionalObject is readObject for a route whose body may be left out: no body is {}.
func readOptionalObject(c echo.Context, allowed ...string) (map[string]any, error) {
	return readObjectOr(c, true, fieldsOrNone(allowed))
}

// readAnyObject reads a JSON object body with any keys (a model row's patch: the model checks
// its fields).
func readAnyObject(c echo.Context) (map[string]any, error) {
	return readObjectOr(c, false, nil)
}

// fieldsOrNone makes "no field allowed" a list, told apart from nil (any field).
func fieldsOrNone(allowed []string) []string {
	if allowed == nil {
		return []string{}
	}
	return allowed
}

// readObjectOr reads a JSON object body; allowed nil lets any key through.
func readObjectOr(c echo.Context, optional bool, allowed []string) (map[string]any, error) {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return nil, err
	}
	if optional && len(strings.TrimSpace(string(body))) == 0 {
		return map[string]any{}, nil
	}
	if err := checkDepth(c, body); err != nil {
		return nil, err
	}
	v, err := vocab.DecodeJSON(body)
	if err != nil {
		return nil, errBadRequest("request body is not valid JSON: %v", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errBadRequest("send a JSON object {%s}", strings.Join(allowed, ", "))
	}
	if allowed != nil {
	next:
		for k := range m {
			for _, a := range allowed {
				if k == a {
					continue next
				}
			}
			if len(allowed) == 0 {
				return nil, errBadRequest("unknown field %q: this route takes no fields (send {} or nothing)", k)
			}
			return nil, errBadRequest("unknown field %q: send {%s}", k, strings.Join(allowed, ", "))
		}
	}
	return m, nil
}

// intParam reads an optional whole-number query parameter (0 when absent).
func intParam(c echo.Context, name string) (int, error) {
	v := c.QueryParam(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, errBadRequest("%s must be a whole number, got %q", name, v)
	}
	return n, nil
}
