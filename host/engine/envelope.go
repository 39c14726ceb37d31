package engine

import (
	"encoding/json"
	"time"

	"github.com/trellis-run/trellis/host/vocab"
)

// envelope is what travels on the bus for one delivery: everything a host needs to run the
// node without asking anyone, so any host can take it.
type envelope struct {
	EventID      string          `json:"eventId"`
	Sender       string          `json:"sender"`
	EventType    string          `json:"eventType"`
	Kwargs       json.RawMessage `json:"kwargs"`
	Listener     string          `json:"listener"`
	RequestID    string          `json:"requestId"`
	NodeID       string          `json:"nodeId"`
	ParentNodeID string          `json:"parentNodeId,omitempty"`
	// Attempt is the try this delivery is (1-based); a retry or resend carries the next one.
	Attempt int `json:"attempt"`
	// CreatedAt is when the node was created; FirstTry when it first ran (cyclic windows);
	// SentAt when the event was sent; NotBefore holds a scheduled retry back until then.
	CreatedAt time.Time `json:"createdAt"`
	FirstTry  time.Time `json:"firstTry,omitempty"`
	SentAt    time.Time `json:"sentAt"`
	NotBefore time.Time `json:"notBefore,omitempty"`
	// Receiver limits a broadcast delivery to one receiving host: the node-id suffix of that
	// receiver's node (a resend of its node). ResendAll marks a resend of a whole broadcast: every
	// receiver runs its node again as its next attempt.
	Receiver  string `json:"receiver,omitempty"`
	ResendAll bool   `json:"resendAll,omitempty"`
	// RequestPaused says the sending host knew the request was paused when it made the node: a
	// host that takes the delivery before it has read that pause from the control log still
	// holds it (control.go), so a node created in a paused request never runs early.
	RequestPaused bool `json:"requestPaused,omitempty"`
}

// event is the value a handler receives as its first argument (docs/reference.md §2).
func (e *envelope) event() map[string]any {
	// vocab's decoder keeps integers exact: {"orderId": 9007199254740993} reaches the handler as sent.
	kwargs, _ := vocab.DecodeJSON(e.Kwargs)
	return map[string]any{
		"id": e.EventID, "sender": e.Sender, "eventType": e.EventType, "kwargs": kwargs,
		"requestId": e.RequestID, "nodeId": e.NodeID, "attempt": int64(e.Attempt), "sentAt": e.SentAt,
	}
}
