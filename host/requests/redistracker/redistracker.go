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

// Tracker is the Redis requests.Tracker. Calls made at once share one round trip: one caller at
// a time sends the queue as a pipeline of script calls (each script still atomic on its own),
// the others wait for its replies, as the embedded tracker groups them into one transaction.
type Tracker struct {
	client redis.UniversalClient
	prefix string

	batch requests.Batcher[*op]
}

// op is one caller's OpenNodes (open) or CloseNode and its outcome.
type op struct {
	open     bool
	key      string
	args     []any
	finished bool
	err      error
	done     chan struct{}
}

// maxBatch bounds one pipeline.
const maxBatch = 256

var _ requests.Tracker = (*Tracker)(nil)

// New returns a tracker keeping its sets under prefix on client.
func New(client redis.UniversalClient, prefix string) *Tracker {
	t := &Tracker{client: client, prefix: prefix}
	t.batch = requests.Batcher[*op]{Run: t.run, Max: maxBatch}
	return t
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
	o := &op{open: true, key: t.prefix + requestID, args: args}
	o.done = make(chan struct{})
	t.batch.Do(o, o.done)
	if o.err != nil {
		return fmt.Errorf("redistracker: open nodes of %s: %w", requestID, o.err)
	}
	return nil
}

// CloseNode marks nodeID finished; it reports true when it was open and was the request's last.
func (t *Tracker) CloseNode(ctx context.Context, requestID, nodeID string) (bool, error) {
	o := &op{key: t.prefix + requestID, args: []any{nodeID}}
	o.done = make(chan struct{})
	t.batch.Do(o, o.done)
	if o.err != nil {
		return false, fmt.Errorf("redistracker: close %s: %w", nodeID, o.err)
	}
	return o.finished, nil
}

// run sends a batch as one pipeline of EVALSHAs, in order; the ops whose script Redis did not
// have (NOSCRIPT: it restarted, or SCRIPT FLUSH) did not run, and are sent again with EVAL.
func (t *Tracker) run(batch []*op) {
	defer func() {
		for _, o := range batch {
			close(o.done)
		}
	}()
	ctx := context.Background()
	script := func(o *op) *redis.Script {
		if o.open {
			return openScript
		}
		return closeScript
	}
	cmds := make([]*redis.Cmd, len(batch))
	pipe := t.client.Pipeline()
	for i, o := range batch {
		cmds[i] = script(o).EvalSha(ctx, pipe, []string{o.key}, o.args...)
	}
	_, _ = pipe.Exec(ctx) // each command's own error is read below
	var again []int
	for i, c := range cmds {
		if redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		pipe = t.client.Pipeline()
		for _, i := range again {
			cmds[i] = script(batch[i]).Eval(ctx, pipe, []string{batch[i].key}, batch[i].args...)
		}
		_, _ = pipe.Exec(ctx)
	}
	for i, o := range batch {
		n, err := cmds[i].Int()
		o.finished, o.err = !o.open && err == nil && n == 1, err
	}
}
