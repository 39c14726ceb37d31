package services

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

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
	for _, op := range engine.NodeOps {
		c.Register(EventSvcName, op, nodeOp(op))
	}
	for _, op := range engine.RequestOps {
		c.Register(EventSvcName, op+"Request", requestOp(op))
	}
}

// nodeOp is EventSvc's method for node operation op: (nodeId[, data]).
func nodeOp(op string) Method {
	return func(ctx context.Context, env Env, inv Invocation) (any, error) {
		res, err := env.NodeOp(ctx, op, inv.Args["nodeId"].(string), inv.Args["data"])
		if err != nil {
			return nil, engineError(op, err)
		}
		return toMap(res)
	}
}

// requestOp is EventSvc's method for request operation op: (requestId).
func requestOp(op string) Method {
	return func(ctx context.Context, env Env, inv Invocation) (any, error) {
		res, err := env.RequestOp(ctx, op, inv.Args["requestId"].(string))
		if err != nil {
			return nil, engineError(op+"Request", err)
		}
		return toMap(res)
	}
}

// toMap is a result struct as the plain values JS receives (its JSON fields).
func toMap(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return vocab.DecodeJSON(b)
}

func resend(ctx context.Context, env Env, inv Invocation) (any, error) {
	res, err := env.Resend(ctx, inv.Args["nodeId"].(string))
	if err != nil {
		return nil, engineError("resend", err)
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
		return nil, engineError("sendEvent", err)
	}
	return res.Map(), nil
}

// engineError names the method in an event center error; the error keeps its code.
func engineError(method string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("services: %s: %w", method, err)
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
		return invalidArg(method, "%s", logstore.TrimSentinel(err))
	case errors.Is(err, logstore.ErrUnavailable):
		return vocab.Errorf(vocab.CodeUnavailable, "services: %s: %v", method, err)
	}
	return err
}

func getEventLog(ctx context.Context, env Env, inv Invocation) (any, error) {
	q, err := logstore.QueryFromArgs(inv.Args, env.Location())
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
	return map[string]any{"totalCount": page.TotalCount, "rowDatas": logstore.PublicRows(page.RowDatas, env.Location())}, nil
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
	return logstore.PublicRows(rows, env.Location()), nil
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
	return logstore.PublicRows(rows, env.Location()), nil
}
