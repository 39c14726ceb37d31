package engine

import (
	"context"
	"errors"

	"github.com/trellis-run/trellis/logstore"
)

// MaxBulkResend caps the nodes one bulk resend touches, so a careless query cannot flood the bus.
const MaxBulkResend = 10000

// BulkResendResult says what a bulk resend did with each node its query matched.
type BulkResendResult struct {
	Resent  []ResendResult   `json:"resent"`
	Skipped []BulkResendSkip `json:"skipped"`
	// Truncated is true when the query matched more than MaxBulkResend nodes.
	Truncated bool `json:"truncated"`
}

// BulkResendSkip is a matched node that was not resent, and why.
type BulkResendSkip struct {
	NodeID string `json:"nodeId"`
	Reason string `json:"reason"`
}

// BulkResend resends every node the log query matches (the console's "resend all failed of
// this listener today"), up to MaxBulkResend; nodes that cannot be resent are listed with why.
func (e *Engine) BulkResend(ctx context.Context, q logstore.Query) (BulkResendResult, error) {
	store := e.opts.Store
	if q.Status == "" {
		q.Status = logstore.StatusFail
	}
	q.Page, q.PageSize = 1, logstore.MaxPageSize
	var nodes []string
	for len(nodes) < MaxBulkResend+1 {
		page, err := store.Query(ctx, q)
		if err != nil {
			return BulkResendResult{}, err
		}
		for _, r := range page.RowDatas {
			nodes = append(nodes, r.NodeID)
		}
		if len(page.RowDatas) < q.PageSize {
			break
		}
		q.Page++
	}
	res := BulkResendResult{Resent: []ResendResult{}, Skipped: []BulkResendSkip{}}
	if len(nodes) > MaxBulkResend {
		nodes, res.Truncated = nodes[:MaxBulkResend], true
	}
	for _, n := range nodes {
		r, err := e.Resend(ctx, n)
		if err != nil {
			if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotStarted) {
				return res, err
			}
			res.Skipped = append(res.Skipped, BulkResendSkip{NodeID: n, Reason: err.Error()})
			continue
		}
		res.Resent = append(res.Resent, r)
	}
	return res, nil
}
