package chstore

import (
	"context"
	"errors"
	"time"

	"github.com/trellis-run/trellis/logstore"
)

var errTODO = errors.New("chstore: not implemented yet")

// Query is getEventLog.
func (s *Store) Query(ctx context.Context, q logstore.Query) (logstore.Page, error) {
	return logstore.Page{}, errTODO
}

// ByRequest is getEventLogByRequestId.
func (s *Store) ByRequest(ctx context.Context, requestID string) ([]logstore.Row, error) {
	return nil, errTODO
}

// ByNode is getEventLogByNodeId.
func (s *Store) ByNode(ctx context.Context, requestID, nodeID string) ([]logstore.Row, error) {
	return nil, errTODO
}

// Attempts is a node's history.
func (s *Store) Attempts(ctx context.Context, nodeID string) ([]logstore.Row, error) {
	return nil, errTODO
}

// Summary is per-element figures.
func (s *Store) Summary(ctx context.Context, q logstore.SummaryQuery) ([]logstore.ElementSummary, error) {
	return nil, errTODO
}

// TimeSeries is counts per bucket.
func (s *Store) TimeSeries(ctx context.Context, q logstore.TimeSeriesQuery) ([]logstore.Bucket, error) {
	return nil, errTODO
}

// DropBefore drops days.
func (s *Store) DropBefore(ctx context.Context, day time.Time) error { return errTODO }
