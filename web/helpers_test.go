package web

import (
	"time"

	"github.com/trellis-run/trellis/host/jsvm"
)

func limitsTimeout() jsvm.Limits { return jsvm.Limits{Timeout: 300 * time.Millisecond} }
