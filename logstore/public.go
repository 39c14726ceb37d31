package logstore

// The public shape of the log: what EventSvc's getEventLog* methods and the HTTP log routes take
// and return, in one place so both answer the same way.

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/trellis-run/trellis/host/vocab"
)

// QueryFromArgs turns getEventLog's bound arguments into a log query: datetimes in any form the
// JS API accepts (app timezone for "YYYY-MM-DD HH:mm:ss"), page and pageSize whole numbers.
// Shared by EventSvc and GET /api/events/logs so both answer the same way.
func QueryFromArgs(args map[string]any, loc *time.Location) (Query, error) {
	const method = "getEventLog"
	q := Query{}
	q.FullName, _ = args["fullName"].(string)
	var err error
	if q.Start, err = optionalTime(method, "startTime", args["startTime"], loc); err != nil {
		return q, err
	}
	if q.End, err = optionalTime(method, "endTime", args["endTime"], loc); err != nil {
		return q, err
	}
	if s, ok := args["status"].(string); ok {
		q.Status = s
	}
	if s, ok := args["stage"].(string); ok {
		q.Stage = s
	}
	if q.Page, err = wholeNumber(method, "page", args["page"], 1); err != nil {
		return q, err
	}
	if q.PageSize, err = wholeNumber(method, "pageSize", args["pageSize"], DefaultPageSize); err != nil {
		return q, err
	}
	if err := q.Validate(); err != nil {
		return q, argError(method, "%s", TrimSentinel(err))
	}
	return q, nil
}

func optionalTime(method, name string, v any, loc *time.Location) (time.Time, error) {
	if v == nil || v == "" {
		return time.Time{}, nil
	}
	t, err := vocab.ParseDatetime(v, loc)
	if err != nil {
		return time.Time{}, argError(method, "argument %q: %v", name, err)
	}
	return t, nil
}

func wholeNumber(method, name string, v any, def int) (int, error) {
	switch n := v.(type) {
	case nil:
		return def, nil
	case int64:
		return int(n), nil
	case int:
		return n, nil
	case float64:
		if n != math.Trunc(n) || math.IsInf(n, 0) || n > math.MaxInt32 || n < math.MinInt32 {
			return 0, argError(method, "argument %q must be a whole number, got %v", name, n)
		}
		return int(n), nil
	}
	return 0, argError(method, "argument %q must be a whole number, got %s", name, vocab.Describe(v))
}

// TrimSentinel drops the "logstore: invalid query: " prefix; the service error says the method.
func TrimSentinel(err error) string {
	msg := err.Error()
	prefix := ErrInvalidQuery.Error() + ": "
	if len(msg) > len(prefix) && msg[:len(prefix)] == prefix {
		return msg[len(prefix):]
	}
	return msg
}

func argError(method, format string, a ...any) error {
	return vocab.Errorf(vocab.CodeInvalidArgument, "%s: %s", method, fmt.Sprintf(format, a...))
}

// PublicRows turns log rows into the plain values EventSvc and the HTTP API return: datetimes as
// "YYYY-MM-DD HH:mm:ss" in the app timezone (empty when unset), kwargs, result and logs as values.
func PublicRows(rows []Row, loc *time.Location) []any {
	out := make([]any, len(rows))
	for i := range rows {
		out[i] = PublicRow(&rows[i], loc)
	}
	return out
}

// PublicRow turns one log row into plain values (see PublicRows).
func PublicRow(r *Row, loc *time.Location) map[string]any {
	m := map[string]any{
		"id": r.ID, "kind": r.Kind, "fullName": r.FullName, "sender": r.Sender, "eventType": r.EventType,
		"status": r.Status, "stage": r.Stage, "requestId": r.RequestID, "nodeId": r.NodeID,
		"parentNodeId": r.ParentNodeID, "eventId": r.EventID, "attempt": int64(r.Attempt),
		"createdAt": formatTime(r.CreatedAt, loc), "recordedAt": formatTime(r.RecordedAt, loc),
		"startTime": formatTime(r.StartTime, loc), "endTime": formatTime(r.EndTime, loc),
		"duration": r.Duration, "host": r.Host,
		"kwargs": rawValue(r.Kwargs), "result": rawValue(r.Result), "logs": rawValue(r.Logs), "error": nil,
	}
	if r.Error != nil {
		m["error"] = map[string]any{"code": r.Error.Code, "message": r.Error.Message, "stack": r.Error.Stack}
	}
	return m
}

func formatTime(t time.Time, loc *time.Location) any {
	if t.IsZero() {
		return nil
	}
	return vocab.FormatDatetime(t, loc)
}

func rawValue(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	v, err := vocab.DecodeJSON(raw)
	if err != nil {
		return string(raw)
	}
	return v
}
