package signals

import (
	"fmt"
	"strings"

	"github.com/trellis-run/trellis/host/lifecycle"
	"github.com/trellis-run/trellis/host/registry"
)

// ValidateReceiver checks a signals.Meta instance beyond its schema: every name in eventTypes
// is a signal Trellis emits (a misspelt one would never match, silently).
func ValidateReceiver(_ *registry.Snapshot, e *registry.Element) []registry.Problem {
	list, _ := e.Definition["eventTypes"].([]any)
	var probs []registry.Problem
	for i, x := range list {
		t, ok := x.(string)
		if !ok || IsSignal(t) {
			continue
		}
		probs = append(probs, e.FieldProblem(fmt.Sprintf("eventTypes/%d", i), registry.CodeBadValue,
			fmt.Sprintf("%q is no signal Trellis emits%s; the signals are: %s", t, gatewayNote(t), strings.Join(Names(), ", "))))
	}
	return probs
}

// Names are the signal names, in CONTRACT §5's order.
func Names() []string {
	out := make([]string, len(lifecycle.Signals))
	for i, t := range lifecycle.Signals {
		out[i] = string(t)
	}
	return out
}

// IsSignal reports whether name is a signal Trellis emits.
func IsSignal(name string) bool {
	for _, t := range lifecycle.Signals {
		if string(t) == name {
			return true
		}
	}
	return false
}

// gatewayNote explains the seed's signals that have no counterpart here.
func gatewayNote(t string) string {
	switch {
	case strings.Contains(t, "gateway"):
		return " (Trellis has no gateways: a request is not a flow graph, so the gateway signals of bamboo-pipeline are never emitted)"
	case strings.Contains(t, "schedule"):
		return " (Trellis nodes have no separate schedule step: use node_execute_fail / node_execute_exception)"
	case strings.Contains(t, "subprocess"):
		return " (Trellis has no subprocesses: a request's nodes are one call tree)"
	}
	return ""
}
