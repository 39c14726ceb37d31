package services

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/trellis-run/trellis/host/vocab"

	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/logstore"
)

// EventSvcName is the fullName of the built-in event service.
const EventSvcName = "events.services.EventSvc"

// CodeUnavailable is the code of a call whose backend is down or not configured; CodeConflict
// of an operation the current state does not allow.
const (
	CodeUnavailable = "unavailable"
	CodeConflict    = "conflict"
)

func registerEventSvc(c *Catalog) {
	c.Register(EventSvcName, "getEventLog", getEventLog)
	c.Register(EventSvcName, "getEventLogByRequestId", getEventLogByRequestID)
	c.Register(EventSvcName, "getEventLogByNodeId", getEventLogByNodeID)
	c.Register(EventSvcName, "sendEvent", sendEvent)
	c.Register(EventSvcName, "resend", resend)
}

func resend(ctx context.Context, env Env, inv Invocation) (any, error) {
	res, err := env.Resend(ctx, inv.Args["nodeId"].(string))
	if err != nil {
		return nil, EngineError("resend", err)
	}
	return map[string]any{"nodeId": res.NodeID, "attempt": int64(res.Attempt)}, nil
}

// sendEvent delivers an event; sent from inside an execution, its nodes join the caller's
// request as children of the caller's node.
func sendEvent(ctx context.Context, env Env, inv Invocation) (any, error) {
	sender, _ := inv.Args["sender"].(string)
	eventType, _ := inv.Args["eventType"].(string)
	res, err := env.SendEvent(ctx, engine.SendRequest{
		Sender: sender, Kwargs: inv.Args["kwargs"], EventType: eventType,
		RequestID: inv.RequestID, ParentNodeID: inv.NodeID,
	})
	if err != nil {
		return nil, EngineError("sendEvent", err)
	}
	return SendResultToJS(res), nil
}

// SendResultToJS is sendEvent's answer as plain values.
func SendResultToJS(res engine.SendResult) map[string]any {
	nodes := make([]any, len(res.NodeIDs))
	for i, n := range res.NodeIDs {
		nodes[i] = n
	}
	subs := make([]any, len(res.Subscribers))
	for i, s := range res.Subscribers {
		subs[i] = s
	}
	out := map[string]any{"requestId": res.RequestID, "eventId": res.EventID, "nodeIds": nodes, "subscribers": subs}
	if res.Note != "" {
		out["note"] = res.Note
	}
	return out
}

// EngineError names the method in an event center error; the error keeps its code.
func EngineError(method string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("services: %s: %w", method, err)
}

// EventLogQuery turns getEventLog's bound arguments into a log query: datetimes in any form the
// JS API accepts (app timezone for "YYYY-MM-DD HH:mm:ss"), page and pageSize whole numbers.
// Shared by EventSvc and GET /api/events/logs so both answer the same way.
func EventLogQuery(args map[string]any, loc *time.Location) (logstore.Query, error) {
	const method = "getEventLog"
	q := logstore.Query{}
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
	if q.Page, err = wholeNumber(method, "page", args["page"], 1); err != nil {
		return q, err
	}
	if q.PageSize, err = wholeNumber(method, "pageSize", args["pageSize"], logstore.DefaultPageSize); err != nil {
		return q, err
	}
	if err := q.Validate(); err != nil {
		return q, invalidArg(method, "%s", trimSentinel(err))
	}
	return q, nil
}

func optionalTime(method, name string, v any, loc *time.Location) (time.Time, error) {
	if v == nil || v == "" {
		return time.Time{}, nil
	}
	t, err := vocab.ParseDatetime(v, loc)
	if err != nil {
		return time.Time{}, invalidArg(method, "argument %q: %v", name, err)
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
			return 0, invalidArg(method, "argument %q must be a whole number, got %v", name, n)
		}
		return int(n), nil
	}
	return 0, invalidArg(method, "argument %q must be a whole number, got %s", name, vocab.Describe(v))
}

// trimSentinel drops the "logstore: invalid query: " prefix; the service error says the method.
func trimSentinel(err error) string {
	msg := err.Error()
	prefix := logstore.ErrInvalidQuery.Error() + ": "
	if len(msg) > len(prefix) && msg[:len(prefix)] == prefix {
		return msg[len(prefix):]
	}
	return msg
}

func logStore(env Env) (logstore.Store, error) {
	if s := env.LogStore(); s != nil {
		return s, nil
	}
	return nil, vocab.Errorf(vocab.CodeUnavailable, "services: the execution log is not running on this host")
}

// storeError maps log store errors to service errors with codes.
func storeError(method string, err error) error {
	switch {
	case errors.Is(err, logstore.ErrInvalidQuery):
		return invalidArg(method, "%s", trimSentinel(err))
	case errors.Is(err, logstore.ErrUnavailable):
		return vocab.Errorf(vocab.CodeUnavailable, "services: %s: %v", method, err)
	}
	return err
}

func getEventLog(ctx context.Context, env Env, inv Invocation) (any, error) {
	q, err := EventLogQuery(inv.Args, env.Location())
	if err != nil {
		return nil, err
	}
	store, err := logStore(env)
	if err != nil {
		return nil, err
	}
	page, err := store.Query(ctx, q)
	if err != nil {
		return nil, storeError("getEventLog", err)
	}
	return map[string]any{"totalCount": page.TotalCount, "rowDatas": RowsToJS(page.RowDatas, env.Location())}, nil
}

func getEventLogByRequestID(ctx context.Context, env Env, inv Invocation) (any, error) {
	store, err := logStore(env)
	if err != nil {
		return nil, err
	}
	rows, err := store.ByRequest(ctx, inv.Args["requestId"].(string))
	if err != nil {
		return nil, storeError("getEventLogByRequestId", err)
	}
	return RowsToJS(rows, env.Location()), nil
}

func getEventLogByNodeID(ctx context.Context, env Env, inv Invocation) (any, error) {
	store, err := logStore(env)
	if err != nil {
		return nil, err
	}
	rows, err := store.ByNode(ctx, inv.Args["requestId"].(string), inv.Args["nodeId"].(string))
	if err != nil {
		return nil, storeError("getEventLogByNodeId", err)
	}
	return RowsToJS(rows, env.Location()), nil
}

// RowsToJS turns log rows into the plain values the JS API and HTTP API return: datetimes as
// "YYYY-MM-DD HH:mm:ss" in the app timezone (empty when unset), kwargs, result and logs as values.
func RowsToJS(rows []logstore.Row, loc *time.Location) []any {
	out := make([]any, len(rows))
	for i := range rows {
		out[i] = RowToJS(&rows[i], loc)
	}
	return out
}

// RowToJS turns one log row into plain values (see RowsToJS).
func RowToJS(r *logstore.Row, loc *time.Location) map[string]any {
	m := map[string]any{
		"id": r.ID, "kind": r.Kind, "fullName": r.FullName, "sender": r.Sender, "eventType": r.EventType,
		"status": r.Status, "stage": r.Stage, "requestId": r.RequestID, "nodeId": r.NodeID,
		"parentNodeId": r.ParentNodeID, "attempt": int64(r.Attempt),
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
