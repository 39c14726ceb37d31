package web

import (
	"time"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/jsvm"
)

func limitsTimeout() jsvm.Limits { return jsvm.Limits{Timeout: 300 * time.Millisecond} }

// depsOf wires a started host into the server, as cmd/trellis serve does.
func depsOf(h *host.Host) Deps {
	d := Deps{App: h, Calls: h, Events: h, Logs: h}
	if tc := h.Tasks(); tc != nil {
		d.Tasks = tc
	}
	if m := h.Models(); m != nil {
		d.Models = m
	}
	return d
}
