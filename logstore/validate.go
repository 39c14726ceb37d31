package logstore

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// stages are the stages a query may filter by (stages.go).
var stages = []string{StageQueued, StageResent, StageBroadcast, StageRunning, StageDone, StageFailed,
	StageRetryScheduled, StageRequeued, StageDeadLettered, StageAwaitingCallback, StageCallback,
	StageCallbackFailed, StageCallbackTimeout, StageScheduled, StageForcedEnd,
	StagePaused, StageSkipped, StageForcedFail, StageRevoked, StageInterrupted, StageDropped, StageLag}

// ValidStage reports whether s is one of the stages rows record.
func ValidStage(s string) bool { return slices.Contains(stages, s) }

// ValidStatus reports whether s is one of the four statuses.
func ValidStatus(s string) bool {
	switch s {
	case StatusWaiting, StatusRunning, StatusSuccess, StatusFail:
		return true
	}
	return false
}

// Validate checks a row has what every row must have. Backends call it on every row of a batch
// before storing any.
func (r *Row) Validate() error {
	switch {
	case r.ID == "":
		return fmt.Errorf("%w: id is empty", ErrInvalidRow)
	case r.NodeID == "":
		return fmt.Errorf("%w: row %s: nodeId is empty", ErrInvalidRow, r.ID)
	case r.RequestID == "":
		return fmt.Errorf("%w: row %s: requestId is empty", ErrInvalidRow, r.ID)
	case r.FullName == "":
		return fmt.Errorf("%w: row %s: fullName is empty", ErrInvalidRow, r.ID)
	case !ValidStatus(r.Status):
		return fmt.Errorf("%w: row %s: status %q is not waiting, running, success or fail", ErrInvalidRow, r.ID, r.Status)
	case r.CreatedAt.IsZero():
		return fmt.Errorf("%w: row %s: createdAt is zero", ErrInvalidRow, r.ID)
	case r.RecordedAt.IsZero():
		return fmt.Errorf("%w: row %s: recordedAt is zero", ErrInvalidRow, r.ID)
	case r.Attempt < 0:
		return fmt.Errorf("%w: row %s: attempt %d is negative", ErrInvalidRow, r.ID, r.Attempt)
	}
	return nil
}

// WithDefaults fills Page and PageSize.
func (q Query) WithDefaults() Query {
	if q.Page == 0 {
		q.Page = 1
	}
	if q.PageSize == 0 {
		q.PageSize = DefaultPageSize
	}
	return q
}

// MaxTextFilter bounds Query.Text.
const MaxTextFilter = 256

// Validate checks a query after WithDefaults; errors wrap ErrInvalidQuery and name the field.
func (q Query) Validate() error {
	switch {
	case q.Page < 1:
		return fmt.Errorf("%w: page must be 1 or more, got %d", ErrInvalidQuery, q.Page)
	case q.PageSize < 1 || q.PageSize > MaxPageSize:
		return fmt.Errorf("%w: pageSize must be 1 to %d, got %d", ErrInvalidQuery, MaxPageSize, q.PageSize)
	case q.Page-1 > MaxOffset/q.PageSize:
		return fmt.Errorf("%w: page %d is past any row: with pageSize %d, page must be at most %d", ErrInvalidQuery, q.Page, q.PageSize, MaxOffset/q.PageSize+1)
	case q.Status != "" && !ValidStatus(q.Status):
		return fmt.Errorf("%w: status %q is not one of success, fail, running, waiting", ErrInvalidQuery, q.Status)
	case q.Stage != "" && !ValidStage(q.Stage):
		return fmt.Errorf("%w: stage %q is not one of %s", ErrInvalidQuery, q.Stage, strings.Join(stages, ", "))
	case len(q.Text) > MaxTextFilter:
		return fmt.Errorf("%w: text must be at most %d bytes, got %d", ErrInvalidQuery, MaxTextFilter, len(q.Text))
	case !utf8.ValidString(q.Text):
		return fmt.Errorf("%w: text must be UTF-8", ErrInvalidQuery)
	case !q.Start.IsZero() && !q.End.IsZero() && !q.Start.Before(q.End):
		return fmt.Errorf("%w: startTime %s is not before endTime %s", ErrInvalidQuery, q.Start.Format(time.RFC3339), q.End.Format(time.RFC3339))
	}
	for k := range q.Kwargs {
		if !validKwargsKey(k) {
			return fmt.Errorf("%w: kwargs filter key %q must be letters, digits, _ or -", ErrInvalidQuery, k)
		}
	}
	return nil
}

func validKwargsKey(k string) bool {
	if k == "" || len(k) > 128 {
		return false
	}
	for _, c := range k {
		if !(c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

func validRange(start, end time.Time) error {
	switch {
	case start.IsZero() || end.IsZero():
		return fmt.Errorf("%w: both start and end are required", ErrInvalidQuery)
	case !start.Before(end):
		return fmt.Errorf("%w: start %s is not before end %s", ErrInvalidQuery, start.Format(time.RFC3339), end.Format(time.RFC3339))
	}
	return nil
}

// Validate checks a summary query.
func (q SummaryQuery) Validate() error { return validRange(q.Start, q.End) }

// Validate checks a time-series query: the range, the bucket, and the number of buckets.
func (q TimeSeriesQuery) Validate() error {
	if err := validRange(q.Start, q.End); err != nil {
		return err
	}
	if q.Bucket < MinBucket || q.Bucket > MaxBucket || q.Bucket%time.Minute != 0 {
		return fmt.Errorf("%w: bucket must be a whole number of minutes from 1m to 24h, got %s", ErrInvalidQuery, q.Bucket)
	}
	if _, _, n := q.Span(); n > MaxBuckets {
		return fmt.Errorf("%w: %d buckets asked for, at most %d: widen the bucket or narrow the range", ErrInvalidQuery, n, MaxBuckets)
	}
	return nil
}
