package web

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/backends"
)

// notRoutes are registered patterns that are fallbacks, not API routes: unknown /api paths
// answer a JSON 404, every other path the editor.
var notRoutes = map[string]bool{"/api/*": true, "/*": true}

// TestOpenAPICoversRoutes holds the document to the routes echo has registered, both ways.
func TestOpenAPICoversRoutes(t *testing.T) {
	t.Parallel()
	// The document needs no started host.
	h, err := host.New(host.Config{AppDir: writeApp(t, testApp), Sandbox: host.SandboxInProcess}, backends.Open)
	require.NoError(t, err)
	srv, err := New(depsOf(h), Options{Token: testToken})
	require.NoError(t, err)
	rec := run(t, srv.Handler(), scenario{method: "GET", path: "/api/openapi.json", noAuth: true, wantStatus: 200, wantIn: []string{`"openapi":"3.0.3"`}})
	var doc struct {
		OpenAPI string `json:"openapi"`
		Info    struct{ Title, Version string }
		Paths   map[string]map[string]struct {
			OperationID string `json:"operationId"`
			Parameters  []struct{ Name, In string }
			Responses   map[string]json.RawMessage
		}
		Components struct {
			Responses map[string]json.RawMessage
			Schemas   map[string]json.RawMessage
		}
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &doc))

	registered := map[string]bool{}
	for _, r := range srv.echo.Routes() {
		if notRoutes[r.Path] || r.Method == "echo_route_any" {
			continue
		}
		registered[strings.ToLower(r.Method)+" "+openAPIPath(r.Path)] = true
	}
	documented := map[string]bool{}
	ids := map[string]bool{}
	for p, item := range doc.Paths {
		for method, op := range item {
			documented[method+" "+p] = true
			require.False(t, ids[op.OperationID], "operationId %s twice", op.OperationID)
			ids[op.OperationID] = true
			// Every path parameter is declared, and every error response is defined.
			for _, seg := range strings.Split(p, "/") {
				if strings.HasPrefix(seg, "{") {
					name := strings.Trim(seg, "{}")
					found := false
					for _, prm := range op.Parameters {
						found = found || (prm.Name == name && prm.In == "path")
					}
					require.True(t, found, "%s %s does not declare its path parameter %s", method, p, name)
				}
			}
			require.NotEmpty(t, op.Responses, "%s %s", method, p)
			for code, resp := range op.Responses {
				if strings.Contains(string(resp), "#/components/responses/") {
					require.Contains(t, doc.Components.Responses, "E"+code, "%s %s answers %s", method, p, code)
				}
			}
		}
	}
	var missing, stale []string
	for r := range registered {
		if !documented[r] {
			missing = append(missing, r)
		}
	}
	for d := range documented {
		if !registered[d] {
			stale = append(stale, d)
		}
	}
	sort.Strings(missing)
	sort.Strings(stale)
	require.Empty(t, missing, "routes missing from /api/openapi.json")
	require.Empty(t, stale, "documented routes that are not registered")
	require.Greater(t, len(documented), 20)
	require.Contains(t, doc.Components.Schemas, "Error")
	require.Contains(t, string(doc.Components.Responses["E422"]), "#/components/schemas/Error")
}

// TestOpenAPIPaths: echo's ":name" parameters become OpenAPI's "{name}".
func TestOpenAPIPaths(t *testing.T) {
	t.Parallel()
	require.Equal(t, "/api/models/{fullName}/rows/{id}", openAPIPath("/api/models/:fullName/rows/:id"))
	require.Equal(t, "getModelsFullNameRowsId", operationID(apiOp{method: "GET", path: "/api/models/:fullName/rows/:id"}))
}
