package engine

import (
	"context"
	"encoding/json"
	"time"

	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/host/execlog"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

// LagSample is one listener's backlog as recorded in the log: Pending deliveries taken by a
// consumer and not yet acknowledged, Undelivered ones no consumer has taken yet, summed over the
// listener's groups (one per broadcast receiver), with the groups themselves.
type LagSample struct {
	Pending     int64          `json:"pending"`
	Undelivered int64          `json:"undelivered"`
	Groups      []bus.GroupLag `json:"groups"`
}

// sampleLag writes the backlog of every listener into the log every LagEvery, as rows of kind
// lag (logstore.KindLag): a listener with a backlog gets a sample each time, and one more when its
// backlog is gone, so the log shows when a queue grew and when it drained without a row per
// idle listener per tick.
func (e *Engine) sampleLag(ctx context.Context) {
	defer e.wg.Done()
	t := time.NewTicker(e.opts.LagEvery)
	defer t.Stop()
	backlogged := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		lag, err := e.Lag(ctx)
		if err != nil {
			continue // the bus is down: health says so, and the next tick tries again
		}
		now := time.Now()
		var rows []logstore.Row
		for listener, groups := range lag {
			s := LagSample{Groups: groups}
			for _, g := range groups {
				s.Pending += g.Pending
				s.Undelivered += g.Undelivered
			}
			busy := s.Pending+s.Undelivered > 0
			if !busy && !backlogged[listener] {
				continue
			}
			backlogged[listener] = busy
			result, _ := json.Marshal(s)
			r := e.opts.Log.Row(execlog.Node{Kind: logstore.KindLag, FullName: logstore.LagPrefix + listener,
				RequestID: logstore.LagPrefix + listener, NodeID: vocab.NewID("lag_"), CreatedAt: now},
				logstore.StatusSuccess, logstore.StageLag, now)
			r.Result = result
			rows = append(rows, r)
		}
		e.writeRows(ctx, rows...)
	}
}
