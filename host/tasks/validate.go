package tasks

import (
	"fmt"
	"strings"
	"time"

	"github.com/trellis-run/trellis/host/lifecycle"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/timers/recurring"
)

// ValidateTemplate is the load-time check of what the scheduler will be asked to run, for every
// tasks.Meta instance (registry.Options.Validators["tasks.Meta"]). The registry checks the shape
// of a template; which cron expressions and intervals run is the scheduler's rule, so it is
// checked here, against the scheduler itself, and a template it would refuse never loads.
func ValidateTemplate(_ *registry.Snapshot, el *registry.Element) []registry.Problem {
	var out []registry.Problem
	d := el.Definition
	rt := strOr(d, "repeatType", RepeatOnce)
	if c, ok := d["cron"].(string); ok {
		if err := recurring.ValidateCron(c); err != nil {
			// The scheduler's message names the wrong field and its allowed values.
			out = append(out, el.FieldProblem("cron", registry.CodeBadCron, strings.TrimPrefix(err.Error(), "recurring: ")))
		}
	}
	if iv, err := time.ParseDuration(str(d, "interval")); err == nil && rt == RepeatInterval && iv < time.Second {
		out = append(out, el.FieldProblem("interval", registry.CodeBadValue,
			fmt.Sprintf("interval %q is shorter than 1s, the shortest the scheduler runs: use 1s or more, such as \"10m\"", str(d, "interval"))))
	}
	// The scheduler takes a cron or an interval, never both, and refuses the whole set of
	// templates for one that has both; the field repeatType does not use is a leftover of an edit.
	if other := map[string]string{RepeatCron: "interval", RepeatInterval: "cron"}[rt]; other != "" {
		if _, set := d[other]; set {
			out = append(out, el.FieldProblem(other, registry.CodeBadConfig,
				fmt.Sprintf("repeatType %q does not use %q: remove it, or set \"repeatType\": %q", rt, other, other)))
		}
	}
	return append(out, lifecycle.CheckHooks(el)...)
}
