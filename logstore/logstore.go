// Package logstore defines the execution log: the Row every execution (event delivery, task run,
// hook, service call) writes at each change of state, the queries users run over those rows,
// and the Store interface its backends implement — logstore/chstore on ClickHouse and
// logstore/localstore, the embedded default. logstore/logstoretest is the one conformance suite
// both pass; logstore/writer batches and spools rows in front of any Store.
//
// This package holds only types, validation and the contract; it imports no driver.
package logstore

import (
	"context"
	"encoding/json"
	"time"
)

// Statuses of a node (docs/reference.md §2). Stage refines them (queued, retryScheduled, deadLettered…).
const (
	StatusWaiting = "waiting"
	StatusRunning = "running"
	StatusSuccess = "success"
	StatusFail    = "fail"
)

// Kinds of execution a row records.
const (
	KindEvent   = "event"
	KindTask    = "task"
	KindHook    = "hook"
	KindService = "service"
	// KindLag rows are samples of the event center's backlog, not executions: FullName is
	// LagPrefix + the listener, Result is {pending, undelivered, groups}. Queries and analytics
	// over every element leave them out; ask for one listener's samples by that FullName.
	KindLag = "lag"
)

// LagPrefix starts the FullName of lag samples ("lag:events.OrderCreated"). Element names never
// hold a colon, so the prefix cannot meet a real element.
const LagPrefix = "lag:"

// Row is one recorded state of one node. A node (one delivery of an event to one listener, one
// task run...) writes a row at each change of state; queries answer with the latest state of
// each node, and attempt history from all of its rows.
//
// ID identifies this state change and makes inserts idempotent: writing the same ID twice (a
// retried batch whose first try secretly succeeded) must never show two rows.
type Row struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// FullName is the handling element; Sender and EventType come from the event, and EventID
	// identifies the event itself: the same on every node and attempt it caused, so a resend
	// keeps it and receivers can deduplicate by it.
	FullName  string `json:"fullName"`
	EventID   string `json:"eventId,omitempty"`
	Sender    string `json:"sender,omitempty"`
	EventType string `json:"eventType,omitempty"`
	Status    string `json:"status"`
	Stage     string `json:"stage,omitempty"`
	// RequestID groups every node one request caused; ParentNodeID makes the call tree.
	RequestID    string `json:"requestId"`
	NodeID       string `json:"nodeId"`
	ParentNodeID string `json:"parentNodeId,omitempty"`
	Attempt      int    `json:"attempt"`
	// CreatedAt is when the node was created (queued); every row of a node carries the same
	// value, and time-range queries and partitions use it.
	CreatedAt time.Time `json:"createdAt"`
	// RecordedAt is when this state was recorded; the latest RecordedAt (then Seq) of a node is
	// its current state.
	RecordedAt time.Time `json:"recordedAt"`
	// Seq orders states of one node recorded within the same instant (a per-node counter).
	Seq       uint32          `json:"seq"`
	StartTime time.Time       `json:"startTime,omitempty"`
	EndTime   time.Time       `json:"endTime,omitempty"`
	Duration  int64           `json:"duration"` // milliseconds
	Kwargs    json.RawMessage `json:"kwargs,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *RowError       `json:"error,omitempty"`
	Host      string          `json:"host,omitempty"`
	// Logs is what the execution wrote to the console, as a JSON array of {time, level, message}.
	Logs json.RawMessage `json:"logs,omitempty"`
}

// RowError is why a node failed.
type RowError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Stack   string `json:"stack,omitempty"`
}

// Query selects nodes by their latest state (getEventLog and the console's filters).
type Query struct {
	// FullName of the handling element; "" = every element.
	FullName string
	// Start and End bound CreatedAt (Start inclusive, End exclusive); zero = open.
	Start, End time.Time
	// Status of the latest state; "" = any.
	Status string
	// Stage of the latest state (StageDeadLettered…); "" = any.
	Stage string
	// Free filters: exact matches; Kwargs matches top-level kwargs fields by their JSON text
	// value (strings unquoted: {"userId": "1"} matches kwargs {"userId": 1} and {"userId": "1"}).
	Sender    string
	Host      string
	ErrorCode string
	Kwargs    map[string]string
	// Text is a piece of text to find, case-insensitively, in the latest state's kwargs (their
	// JSON text), error code or error message; "" = any. Case folding is ASCII on the embedded
	// store and Unicode on ClickHouse. It reads every row of the range: give a time range or an
	// element on a large log.
	Text string
	// Page is 1-based; PageSize 1…MaxPageSize (default DefaultPageSize).
	Page, PageSize int
}

// Paging limits.
const (
	DefaultPageSize = 20
	MaxPageSize     = 1000
	// MaxOffset bounds the rows before a page, (Page-1)×PageSize: a page further out is refused
	// rather than computed, since that product wraps around for a page near 2^63 (page
	// 9223372036854775806 answered the first page, and a bulk resend of it resent the first
	// page's nodes). No log holds 2^40 nodes.
	MaxOffset = 1 << 40
)

// Page is getEventLog's answer: the total of matching nodes and one page of their latest
// states, newest CreatedAt first.
type Page struct {
	TotalCount int64 `json:"totalCount"`
	RowDatas   []Row `json:"rowDatas"`
}

// SummaryQuery asks for per-element figures over a time range of CreatedAt.
type SummaryQuery struct {
	Start, End time.Time // both required, Start < End
	FullName   string    // "" = every element
}

// ElementSummary is one element's figures over the range, by the latest state of its nodes.
type ElementSummary struct {
	FullName    string           `json:"fullName"`
	Total       int64            `json:"total"`
	ByStatus    map[string]int64 `json:"byStatus"`
	FailureRate float64          `json:"failureRate"` // fail / (success + fail); 0 when none finished
	// Duration percentiles, in milliseconds, over finished nodes.
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
}

// TimeSeriesQuery asks for counts per bucket. Buckets are aligned to the clock, not to Start:
// the series is the whole buckets of Span.
type TimeSeriesQuery struct {
	Start, End time.Time     // both required, Start < End
	Bucket     time.Duration // MinBucket…MaxBucket, a whole number of minutes
	FullName   string        // "" = every element
}

// Bucket limits of time series.
const (
	MinBucket = time.Minute
	MaxBucket = 24 * time.Hour
	// MaxBuckets caps the buckets of a query's Span so one query cannot ask for millions of
	// points.
	MaxBuckets = 10000
)

// Bucket is one point of a time series: nodes created in [Start, Start+Bucket), by status;
// Start is a multiple of the bucket width since the Unix epoch, in UTC.
type Bucket struct {
	Start    time.Time        `json:"start"`
	Total    int64            `json:"total"`
	ByStatus map[string]int64 `json:"byStatus"`
	Failed   int64            `json:"failed"`
	P95      float64          `json:"p95"` // ms, over finished nodes
}

// Store is a backend of the execution log.
//
// Contract, checked by logstoretest:
//   - Insert is idempotent on Row.ID: rows whose ID was inserted before are not shown twice by any
//     query, even when the same batch is inserted again. Insert of an invalid row (Validate)
//     fails the whole batch without storing any of it.
//   - A row is visible to queries once Insert returned nil.
//   - Queries answer with the latest state of each node (greatest RecordedAt, then Seq) unless
//     they say otherwise; ByRequest and ByNode order by CreatedAt then NodeID; Attempts by
//     RecordedAt then Seq.
//   - Query validates q (Validate) and fails with ErrInvalidQuery naming the field.
//   - A backend that cannot be reached fails with an error wrapping ErrUnavailable.
//   - Safe for concurrent use. Close is safe to call twice.
type Store interface {
	Insert(ctx context.Context, rows []Row) error
	Query(ctx context.Context, q Query) (Page, error)
	// ByRequest is every node of a request (getEventLogByRequestId), latest state each.
	ByRequest(ctx context.Context, requestID string) ([]Row, error)
	// ByNode is the node and all its descendants in the request (getEventLogByNodeId).
	ByNode(ctx context.Context, requestID, nodeID string) ([]Row, error)
	// Attempts is every recorded state of one node, oldest first.
	Attempts(ctx context.Context, nodeID string) ([]Row, error)
	Summary(ctx context.Context, q SummaryQuery) ([]ElementSummary, error)
	TimeSeries(ctx context.Context, q TimeSeriesQuery) ([]Bucket, error)
	// DropBefore removes whole days of rows created before day (retention by partition).
	DropBefore(ctx context.Context, day time.Time) error
	Close() error
}
