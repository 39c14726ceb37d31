// Package redistracker is the requests.Tracker on Redis: one set of unfinished node ids per
// request (prefix + request id), changed by scripts so a close and the emptiness check are one
// atomic step. Every OpenNodes resets the set's expiry to requests.Retention.
package redistracker

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/trellis-run/trellis/host/requests"
)

// Tracker is the Redis requests.Tracker.
type Tracker struct {
	client redis.UniversalClient
	prefix string
}

var _ requests.Tracker = (*Tracker)(nil)

// New returns a tracker keeping its sets under prefix on client.
func New(client redis.UniversalClient, prefix string) *Tracker {
	return &Tracker{client: client, prefix: prefix}
}

var openScript = redis.NewScript(`
redis.call('SADD', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1`)

// closeScript removes the node; 1 when it was there and the set is now empty (Redis deletes
// an empty set, so a later OpenNodes starts afresh).
var closeScript = redis.NewScript(`
if redis.call('SREM', KEYS[1], ARGV[1]) == 1 and redis.call('EXISTS', KEYS[1]) == 0 then return 1 end
return 0`)

// OpenNodes marks nodeIDs of requestID unfinished.
func (t *Tracker) OpenNodes(ctx context.Context, requestID string, nodeIDs ...string) error {
	if len(nodeIDs) == 0 {
		return nil
	}
	args := make([]any, 0, len(nodeIDs)+1)
	args = append(args, requests.Retention)
	for _, n := range nodeIDs {
		args = append(args, n)
	}
	if err := openScript.Run(ctx, t.client, []string{t.prefix + requestID}, args...).Err(); err != nil {
		return fmt.Errorf("redistracker: open nodes of %s: %w", requestID, err)
	}
	return nil
}

// CloseNode marks nodeID finished; it reports true when it was open and was the request's last.
func (t *Tracker) CloseNode(ctx context.Context, requestID, nodeID string) (bool, error) {
	n, err := closeScript.Run(ctx, t.client, []string{t.prefix + requestID}, nodeID).Int()
	if err != nil {
		return false, fmt.Errorf("redistracker: close %s: %w", nodeID, err)
	}
	return n == 1, nil
}
