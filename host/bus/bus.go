// Package bus moves messages between Trellis hosts: durable topics with consumer groups, acks,
// redelivery and the claim of messages a dead consumer left behind. The event center builds
// delivery on it: one topic per listener queue, one consumer group per way of handling
// (pool, broadcast member, singleton set).
//
// The package holds only the interface, its contract and the Features a backend declares.
// Backends: bus/redisbus (Redis Streams and consumer groups) and bus/localbus (embedded,
// persistent in the data directory). bus/bustest is the one conformance suite both pass.
package bus

import (
	"context"
	"time"
)

// Message is one message on a topic.
type Message struct {
	// ID is assigned by the bus on Publish (a Redis stream entry id, or the local sequence) and
	// is unique within its topic. Ignored on Publish.
	ID string
	// Payload is opaque to the bus.
	Payload []byte
	// Headers are small string attributes (event id, attempt, trace ids).
	Headers map[string]string
}

// Delivery is one message handed to one consumer of a group. Exactly one of Ack or Nack must be
// called; until then the message is pending on that consumer and no other member of the group
// gets it unless it is claimed after the consumer stopped acknowledging (SubscribeOptions.ClaimAfter).
type Delivery interface {
	Message() *Message
	// Deliveries is how many times the group has handed this message out, this one included
	// (1 on the first delivery; it grows with Nack redeliveries and claims).
	Deliveries() int
	// Ack marks the message handled for this group.
	Ack(ctx context.Context) error
	// Nack gives the message back to the group for redelivery, to this or another member.
	Nack(ctx context.Context) error
}

// StartPosition says where a new consumer group starts reading a topic.
type StartPosition int

const (
	// StartOldest reads every message still on the topic: reliable delivery keeps messages for a
	// group even while no consumer runs.
	StartOldest StartPosition = iota
	// StartNewest reads only messages published after the group first subscribed; with
	// SkipBacklog it also skips what arrived while no member ran (non-reliable delivery).
	StartNewest
)

// SubscribeOptions configure one consumer of a group.
type SubscribeOptions struct {
	// Consumer names this member of the group; unique per process (a host id). Required.
	Consumer string
	// Start applies when the group does not exist yet.
	Start StartPosition
	// SkipBacklog moves the group past every message already on the topic when this member
	// subscribes while no other member of the group is live (non-reliable delivery: what arrived
	// while no host ran it is dropped; a member that joins live ones takes its share of what they
	// have not read yet, as they would have).
	SkipBacklog bool
	// Skipped, with SkipBacklog, hears the messages skipped, oldest first and in batches, before
	// Subscribe returns, so the caller can record that they were dropped. It must not call the bus.
	Skipped func(msgs []*Message)
	// Prefetch caps the deliveries handed out to this consumer and not yet acked or nacked
	// (default 64). With Prefetch 1, the next message is not delivered before the current one is
	// acked: in-order handling within the group for this consumer.
	Prefetch int
	// ClaimAfter: messages pending on another consumer of the group, unacknowledged for longer
	// than this, are claimed by this consumer (a dead host's messages move on). 0 = default
	// (30 s); a negative value disables claiming by this consumer.
	ClaimAfter time.Duration
}

// Subscription is one consumer's stream of deliveries.
type Subscription interface {
	// Deliveries yields deliveries until the subscription is closed (the channel is closed then).
	Deliveries() <-chan Delivery
	// Close stops receiving. Deliveries not yet acked stay pending for the group and are claimed
	// or redelivered later; nothing is lost. Safe to call twice.
	Close() error
}

// Features say what a backend guarantees beyond the contract, so the conformance suite and the
// engine can rely on them.
type Features struct {
	// Persistent: messages and group positions survive a restart of the process (localbus) or of
	// the broker (redisbus with persistence).
	Persistent bool
	// Shared: several processes can use one bus (Redis); false for an embedded bus owned by one
	// process.
	Shared bool
}

// Bus is a backend.
//
// Contract, checked by bustest:
//   - Publish returns once the messages are durably accepted (Features.Persistent) and assigns
//     IDs in publish order; a topic keeps publish order.
//   - Every consumer group of a topic receives every message published after it was created
//     (StartOldest: every message on the topic); members of a group share the messages, each
//     message delivered to one member at a time.
//   - A message is redelivered after Nack, and after ClaimAfter when its consumer neither acked
//     nor nacked it (a dead consumer). Nothing acknowledged by Publish is lost while a group
//     exists: not when consumers close, crash or are replaced, not when the broker restarts
//     (Persistent).
//   - With Prefetch 1, a consumer gets no next message before it acked or nacked the current one.
//   - The backend trims, on its own, messages every group of the topic has acknowledged, so topics
//     do not grow without bound; it never removes a pending or undelivered one.
//   - Safe for concurrent use. Close closes every subscription and is safe to call twice.
type Bus interface {
	Publish(ctx context.Context, topic string, msgs ...*Message) ([]string, error)
	Subscribe(ctx context.Context, topic, group string, opts SubscribeOptions) (Subscription, error)
	// Lag reports, per group of the topic, how many messages are pending (delivered, not acked)
	// and not yet delivered.
	Lag(ctx context.Context, topic string) ([]GroupLag, error)
	// DeleteGroup removes a consumer group (a listener that was removed or a broadcast member
	// that is gone for good).
	DeleteGroup(ctx context.Context, topic, group string) error
	Features() Features
	Close() error
}

// GroupLag is the backlog of one consumer group.
type GroupLag struct {
	Group       string `json:"group"`
	Pending     int64  `json:"pending"`
	Undelivered int64  `json:"undelivered"`
	Consumers   int    `json:"consumers"`
}
