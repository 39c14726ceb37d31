package host_test

import (
	"os/exec"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// floors are the layers of docs/architecture.md, lowest first. A package may import packages of
// a lower floor, and of its own floor unless the floor is made of siblings that must stay apart;
// never of a higher one. A package not listed here fails the test, so a new one gets a floor on
// purpose. Conformance suites (…test packages) sit with what they test.
var floors = []struct {
	siblings bool // packages of this floor may not import each other
	pkgs     []string
}{
	// 0: the vocabulary, elements (the built-in elements as files), and compiling JavaScript.
	{true, []string{"host/vocab", "elements", "host/jscompile"}},
	// 1: the interfaces every backend implements with their suites, the registry, and the
	// plumbing embedded backends share.
	{false, []string{"host/bus", "logstore", "host/timers", "host/models", "host/registry",
		"host/embedded", "host/embedded/appendlog", "host/embedded/sqlitedb", "host/rediserr", "host/redisconn",
		"host/models/internal/sqlgen", "host/models/internal/sqlstore",
		"host/bus/bustest", "logstore/logstoretest", "host/timers/timerstest", "host/models/modelstest",
		"host/requests", "host/requests/requeststest"}},
	// 2: the sandbox and the scheduler.
	{false, []string{"host/jsvm", "host/jsvm/jsvmtest", "host/timers/recurring", "host/timers/recurring/coordtest"}},
	// 3: backends, the log writer, the isolated executor, and editing the app directory.
	{false, []string{"host/bus/localbus", "host/bus/redisbus", "host/bus/redisbus/redistest", "host/timers/localtimers",
		"host/timers/redistimers", "host/timers/recurring/locallock", "host/timers/recurring/redislock",
		"logstore/chstore", "logstore/localstore", "host/models/pgmodels", "host/models/sqlitemodels",
		"logstore/writer", "logstore/redisspool", "host/isolate", "host/appdir", "host/requests/localtracker", "host/requests/redistracker"}},
	// 4: what every runtime part uses: the row builder, webhook delivery, retry policies and the
	// names of the lifecycle moments hooks and signals hear.
	{true, []string{"host/execlog", "host/webhook", "host/retry", "host/lifecycle"}},
	// 5: the runtime parts, which know nothing of each other: the host connects them.
	{true, []string{"host/engine", "host/tasks", "host/modelrt", "host/signals"}},
	// 6: the built-in Go services, bound to the parts; the metrics the host feeds.
	{false, []string{"host/services", "host/metrics"}},
	// 7: the host's wiring, and the one place that chooses backends.
	{false, []string{"host", "host/backends"}},
	// 8: the HTTP layer, the benchmarks, and the test plumbing of the runtime parts.
	{true, []string{"web", "host/bench", "host/internal/parttest"}},
	// 9: the command, and the browser tests that drive a whole host through the web app.
	{false, []string{"cmd/trellis", "cmd/trellis/faults", "web/uitest"}},
}

// backendPackages name a concrete backend: only host/backends (and tests) may import them.
var backendPackages = []string{"host/bus/localbus", "host/bus/redisbus", "host/timers/localtimers", "host/timers/redistimers",
	"host/timers/recurring/locallock", "host/timers/recurring/redislock", "logstore/chstore", "logstore/localstore",
	"host/models/pgmodels", "host/models/sqlitemodels", "host/requests/localtracker", "host/requests/redistracker", "logstore/redisspool"}

const module = "github.com/trellis-run/trellis/"

// TestImportsPointDown reads the import graph with go list and holds it to docs/architecture.md:
// no arrow from a lower floor to a higher one, concrete backends named only by host/backends,
// and web reaching the host only through the interfaces it owns.
func TestImportsPointDown(t *testing.T) {
	t.Parallel()
	// Only stdout is the graph: go list warns on stderr (a symlinked node_modules, say).
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}:{{join .Imports " "}}`, module+"...")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "%s", stderr.String())
	floorOf := map[string]int{}
	for i, f := range floors {
		for _, p := range f.pkgs {
			floorOf[p] = i
		}
	}
	var problems []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, imports, _ := strings.Cut(line, ":")
		pkg := strings.TrimPrefix(name, module)
		from, ok := floorOf[pkg]
		if !ok {
			problems = append(problems, pkg+" has no floor: add it to floors and docs/architecture.md")
			continue
		}
		for _, imp := range strings.Fields(imports) {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			dep := strings.TrimPrefix(imp, module)
			if to, ok := floorOf[dep]; ok && (to > from || (to == from && floors[from].siblings)) {
				problems = append(problems, pkg+" (floor "+itoa(from)+") imports "+dep+" (floor "+itoa(to)+")")
			}
			if contains(backendPackages, dep) && pkg != "host/backends" {
				problems = append(problems, pkg+" names the concrete backend "+dep+": only host/backends may")
			}
			if pkg == "web" && (dep == "host" || dep == "host/backends" || dep == "host/isolate" || dep == "logstore/writer") {
				problems = append(problems, "web imports "+dep+": it must reach the host through the interfaces of web/deps.go")
			}
		}
	}
	sort.Strings(problems)
	require.Empty(t, problems)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func itoa(i int) string { return string(rune('0' + i)) }
