package redistimers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/trellis-run/trellis/host/redisconn"
	"github.com/trellis-run/trellis/host/rediserr"
	"github.com/trellis-run/trellis/host/timers"
	"github.com/trellis-run/trellis/host/vocab"
)

// DefaultPrefix is used when New is given an empty prefix.
const DefaultPrefix = "trellis:timers:"

// forcedPoll is how often a ForcedEnds channel asks Redis for new force-ends: well within the
// contract's second, at one cheap ZRANGEBYSCORE per runner.
const forcedPoll = 100 * time.Millisecond

// Store keeps tasks in Redis for every host of a cluster. Safe for concurrent use by many
// goroutines and hosts; see the package doc.
type Store struct {
	c redis.UniversalClient
	p string

	closed atomic.Bool
	mu     sync.Mutex // orders ForcedEnds' wg.Add before Close's Wait
	done   chan struct{}
	wg     sync.WaitGroup
	now    func() time.Time
}

var (
	_ timers.Store      = (*Store)(nil)
	_ timers.PollHinter = (*Store)(nil)
)

// New returns a store on client under prefix (the host uses "trellis:<app>:timers:"; empty
// means DefaultPrefix). On a Redis Cluster the store keeps every key in one slot, since its
// scripts reach task hashes through the prefix: a prefix without a hash tag becomes one
// ("trellis:app:timers:" → "{trellis:app:timers}:"); on one server the names stay as they were.
// The caller keeps owning client: Close does not close it.
func New(client redis.UniversalClient, prefix string) *Store {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if redisconn.IsCluster(client) {
		prefix = redisconn.OneSlot(prefix)
	}
	return &Store{c: client, p: prefix, done: make(chan struct{}), now: time.Now}
}

// PollHint: other hosts' tasks are only found by asking, so runners ask every 50ms.
func (s *Store) PollHint() time.Duration { return 50 * time.Millisecond }

// Now is Redis's clock (TIME): the one every host's runner judges due times and leases by
// (timers.StoreClock).
func (s *Store) Now(ctx context.Context) (time.Time, error) {
	return s.c.Time(ctx).Result()
}

// Close ends the ForcedEnds channels and refuses further calls. Safe to call twice.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed.Swap(true) {
		s.mu.Unlock()
		return nil
	}
	close(s.done)
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Store) key(name string) string { return s.p + name }

func (s *Store) addr() string {
	switch c := s.c.(type) {
	case *redis.Client:
		return c.Options().Addr
	case *redis.ClusterClient:
		return strings.Join(c.Options().Addrs, ",")
	}
	return "the configured address"
}

// unavailable says whether err means Redis cannot serve now: the caller may retry.
func unavailable(err error) bool { return rediserr.Unavailable(err) }

// fail wraps err for op: the caller's context error as it is, ErrClosed after Close,
// ErrUnavailable when Redis cannot serve, anything else (a script bug, a foreign key type) as
// it is.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("redistimers: %s: %w", op, cerr)
	}
	if s.closed.Load() {
		return errClosed(op)
	}
	if unavailable(err) {
		return fmt.Errorf("redistimers: %s: %w: %w (is Redis at %s running?)", op, timers.ErrUnavailable, err, s.addr())
	}
	return fmt.Errorf("redistimers: %s: %w", op, err)
}

func errClosed(op string) error {
	return fmt.Errorf("redistimers: %s: %w: %w", op, timers.ErrClosed, timers.ErrUnavailable)
}

func (s *Store) check(op string) error {
	if s.closed.Load() {
		return errClosed(op)
	}
	return nil
}

func ms(t time.Time) int64 { return t.UnixMilli() }

// ceilMS is t in ms rounded up, so a due score never lies before the StartTime.
func ceilMS(t time.Time) int64 {
	n := t.UnixNano()
	m := n / 1e6
	if n%1e6 > 0 {
		m++
	}
	return m
}

func fromMS(v string) time.Time {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

// fields lays out a new task for createScript, leaving empty fields out (memory: a million
// waiting tasks).
func fields(t timers.Task) ([]any, error) {
	args, err := json.Marshal(t.ArgDict)
	if err != nil {
		return nil, fmt.Errorf("%w: argDict: %v", timers.ErrInvalid, err)
	}
	f := []any{"fn", t.FullName, "st", strconv.FormatInt(t.StartTime.UnixNano(), 10), "c", ms(t.CreatedAt)}
	if !t.UpdatedAt.Equal(t.CreatedAt) {
		f = append(f, "u", ms(t.UpdatedAt))
	}
	if string(args) != "null" {
		f = append(f, "a", string(args))
	}
	for _, kv := range []struct{ k, v string }{{"f", t.FuncName}, {"ty", t.TaskType}, {"rq", t.RequestID},
		{"n", t.NodeID}, {"k", t.Key}, {"o", t.Owner}} {
		if kv.v != "" {
			f = append(f, kv.k, kv.v)
		}
	}
	if t.Attempt != 0 {
		f = append(f, "at", t.Attempt)
	}
	if !t.StartedAt.IsZero() {
		f = append(f, "sa", ms(t.StartedAt))
	}
	if !t.FirstStartedAt.IsZero() {
		f = append(f, "fs", ms(t.FirstStartedAt))
	}
	return f, nil
}

// decode reads a task hash.
func decode(id string, h map[string]string) (timers.Task, error) {
	t := timers.Task{ID: id, FullName: h["fn"], FuncName: h["f"], TaskType: h["ty"], Status: h["s"],
		RequestID: h["rq"], NodeID: h["n"], Key: h["k"], Owner: h["o"],
		CreatedAt: fromMS(h["c"]), UpdatedAt: fromMS(h["u"]), StartedAt: fromMS(h["sa"]), EndedAt: fromMS(h["ea"]),
		FirstStartedAt: fromMS(h["fs"]), PausedWith: h["pw"]}
	if t.UpdatedAt.IsZero() {
		t.UpdatedAt = t.CreatedAt // not stored until the first change
	}
	if v := h["st"]; v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return t, fmt.Errorf("task %s: bad start time %q", id, v)
		}
		t.StartTime = time.Unix(0, n).UTC()
	}
	if v := h["at"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return t, fmt.Errorf("task %s: bad attempt %q", id, v)
		}
		t.Attempt = n
	}
	if v := h["a"]; v != "" {
		// vocab's decoder keeps integers exact: an id above 2^53 in argDict reaches the function as it was given.
		var err error
		if t.ArgDict, err = vocab.DecodeJSONObject([]byte(v)); err != nil {
			return t, fmt.Errorf("task %s: decode argDict: %w", id, err)
		}
	}
	if v := h["r"]; v != "" {
		var err error
		if t.Result, err = vocab.DecodeJSON([]byte(v)); err != nil {
			return t, fmt.Errorf("task %s: decode result: %w", id, err)
		}
	}
	if v := h["e"]; v != "" {
		t.Error = &timers.TaskError{}
		if err := json.Unmarshal([]byte(v), t.Error); err != nil {
			return t, fmt.Errorf("task %s: decode error: %w", id, err)
		}
	}
	return t, nil
}

// decodePair reads a script's {id, HGETALL} reply (the hash does not repeat its own id).
func decodePair(v any) (timers.Task, error) {
	pair, ok := v.([]any)
	if !ok || len(pair) != 2 {
		return timers.Task{}, fmt.Errorf("unexpected script reply %v", v)
	}
	id, _ := pair[0].(string)
	return decodeFlat(id, pair[1])
}

// decodeFlat reads a task from a script's HGETALL reply.
func decodeFlat(id string, v any) (timers.Task, error) {
	arr, ok := v.([]any)
	if !ok {
		return timers.Task{}, fmt.Errorf("task %s: unexpected reply %T", id, v)
	}
	h := make(map[string]string, len(arr)/2)
	for i := 0; i+1 < len(arr); i += 2 {
		k, _ := arr[i].(string)
		val, _ := arr[i+1].(string)
		h[k] = val
	}
	return decode(id, h)
}

// create stores t and returns it as stored (a waiting task created in a paused or revoked
// request is paused or failed: createScript) and the ids it replaced.
func (s *Store) create(ctx context.Context, op string, t timers.Task, score int64) (timers.Task, []string, error) {
	f, err := fields(t)
	if err != nil {
		return t, nil, fmt.Errorf("redistimers: %s: %w", op, err)
	}
	args := append([]any{s.p, t.ID, t.Key, t.Status, score, t.RequestID, ms(t.CreatedAt)}, f...)
	res, err := createScript.Run(ctx, s.c, []string{s.key("all")}, args...).Slice()
	if err != nil {
		return t, nil, s.fail(ctx, op, err)
	}
	if res[0] == "exists" {
		return t, nil, fmt.Errorf("redistimers: %s: %w: task %s already exists; leave taskId empty to get a new one", op, timers.ErrConflict, t.ID)
	}
	var replaced []string
	for _, v := range res[1].([]any) {
		replaced = append(replaced, v.(string))
	}
	stored, err := decodeFlat(t.ID, res[2])
	if err != nil {
		return t, nil, fmt.Errorf("redistimers: %s: %w", op, err)
	}
	return stored, replaced, nil
}

// Create stores a waiting task, replacing the waiting task holding its Key in the same script.
func (s *Store) Create(ctx context.Context, t timers.Task) (timers.Task, []string, error) {
	t, err := timers.ValidateCreate(t)
	if err != nil {
		return t, nil, fmt.Errorf("redistimers: create: %w", err)
	}
	if err := s.check("create"); err != nil {
		return t, nil, err
	}
	now := time.UnixMilli(ms(s.now())).UTC()
	t.CreatedAt, t.UpdatedAt = now, now
	t.StartTime = t.StartTime.UTC()
	t.ArgDict = timers.StoredArgs(t.ArgDict)
	return s.create(ctx, "create", t, ceilMS(t.StartTime))
}

// CreateRunning records a task already running on owner.
func (s *Store) CreateRunning(ctx context.Context, t timers.Task, owner string, lease time.Duration) (timers.Task, error) {
	now := time.UnixMilli(ms(s.now())).UTC()
	t, err := timers.ValidateCreateRunning(t, owner, lease, now)
	if err != nil {
		return t, fmt.Errorf("redistimers: create running: %w", err)
	}
	if err := s.check("create running"); err != nil {
		return t, err
	}
	t.StartTime = t.StartTime.UTC()
	t.Status, t.Attempt, t.Owner = timers.StatusRunning, 1, owner
	t.CreatedAt, t.UpdatedAt, t.StartedAt, t.FirstStartedAt = now, now, now, now
	t.ArgDict = timers.StoredArgs(t.ArgDict)
	stored, _, err := s.create(ctx, "create running", t, ms(now.Add(lease)))
	if err != nil {
		return t, err
	}
	return stored, nil
}

// Get returns the record of id.
func (s *Store) Get(ctx context.Context, id string) (timers.Task, error) {
	if err := timers.ValidateID(id); err != nil {
		return timers.Task{}, fmt.Errorf("redistimers: get: %w", err)
	}
	if err := s.check("get"); err != nil {
		return timers.Task{}, err
	}
	h, err := s.c.HGetAll(ctx, s.key("t:"+id)).Result()
	if err != nil {
		return timers.Task{}, s.fail(ctx, "get "+id, err)
	}
	if len(h) == 0 {
		return timers.Task{}, fmt.Errorf("redistimers: get %s: %w", id, timers.ErrNotFound)
	}
	t, err := decode(id, h)
	if err != nil {
		return t, fmt.Errorf("redistimers: get: %w", err)
	}
	return t, nil
}

// listBudget is how many index entries one list script examines: it bounds how long one call
// blocks Redis while a filtered List scans for matches.
const listBudget = 2000

// List pages through the records newest first. Totals come from a counts hash (cheap); an
// unfiltered page is a rank range on the creation index; a filtered page scans that index
// newest first, listBudget entries per script call, until the page is full: its cost grows with
// how deep the page is and how rare the matches are (a rare fullName deep in a large history
// scans most of it, in slices that never block Redis for long).
func (s *Store) List(ctx context.Context, q timers.ListQuery) ([]timers.Task, int64, error) {
	q, err := q.Normalize()
	if err != nil {
		return nil, 0, fmt.Errorf("redistimers: list: %w", err)
	}
	if err := s.check("list"); err != nil {
		return nil, 0, err
	}
	total, err := s.count(ctx, q.FullName, q.Status)
	if err != nil {
		return nil, 0, s.fail(ctx, "list", err)
	}
	if total <= int64(q.Offset()) {
		return []timers.Task{}, total, nil
	}
	var out []timers.Task
	if q.FullName == "" && q.Status == "" {
		out, err = s.listAll(ctx, q)
	} else {
		out, err = s.listFiltered(ctx, q)
	}
	if err != nil {
		return nil, 0, s.fail(ctx, "list", err)
	}
	return out, total, nil
}

func (s *Store) count(ctx context.Context, fullName, status string) (int64, error) {
	if fullName != "" && status != "" {
		n, err := s.c.HGet(ctx, s.key("counts"), fullName+"\x00"+status).Int64()
		if errors.Is(err, redis.Nil) {
			return 0, nil
		}
		return max(n, 0), err
	}
	h, err := s.c.HGetAll(ctx, s.key("counts")).Result()
	if err != nil {
		return 0, err
	}
	var total int64
	for k, v := range h {
		i := strings.LastIndexByte(k, 0)
		if i < 0 {
			continue
		}
		if (fullName == "" || k[:i] == fullName) && (status == "" || k[i+1:] == status) {
			n, _ := strconv.ParseInt(v, 10, 64)
			total += max(n, 0)
		}
	}
	return total, nil
}

func (s *Store) listAll(ctx context.Context, q timers.ListQuery) ([]timers.Task, error) {
	ids, err := s.c.ZRevRange(ctx, s.key("all"), int64(q.Offset()), int64(q.Offset()+q.PageSize-1)).Result()
	if err != nil {
		return nil, err
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, s.key("t:"+id))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]timers.Task, 0, len(ids))
	for i, id := range ids {
		h := cmds[i].Val()
		if len(h) == 0 {
			continue // replaced between the two calls
		}
		t, err := decode(id, h)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func (s *Store) listFiltered(ctx context.Context, q timers.ListQuery) ([]timers.Task, error) {
	cursor, skip := "+inf", q.Offset()
	out := make([]timers.Task, 0, q.PageSize)
	for len(out) < q.PageSize {
		res, err := listScript.Run(ctx, s.c, []string{s.key("all")}, s.p, cursor, q.FullName, q.Status,
			skip, q.PageSize-len(out), listBudget).Slice()
		if err != nil {
			return nil, err
		}
		for _, v := range res[0].([]any) {
			t, err := decodePair(v)
			if err != nil {
				return nil, err
			}
			out = append(out, t)
		}
		skip = int(res[1].(int64))
		last, _ := res[2].(string)
		if res[3].(int64) == 1 || last == "" {
			break
		}
		cursor = "(" + last
	}
	return out, nil
}

// RemoveKey deletes the waiting task holding key.
func (s *Store) RemoveKey(ctx context.Context, key string) ([]string, error) {
	if key == "" {
		return nil, fmt.Errorf("redistimers: remove key: %w: key is empty", timers.ErrInvalid)
	}
	if err := s.check("remove key"); err != nil {
		return nil, err
	}
	res, err := removeKeyScript.Run(ctx, s.c, []string{s.key("keys")}, s.p, key).StringSlice()
	if err != nil {
		return nil, s.fail(ctx, "remove key", err)
	}
	return res, nil
}

// Claim runs claimScript: expired leases first, then due tasks, earliest first.
func (s *Store) Claim(ctx context.Context, now time.Time, owner string, lease time.Duration, limit int) ([]timers.Task, error) {
	if err := timers.ValidateOwner(owner, lease); err != nil {
		return nil, fmt.Errorf("redistimers: claim: %w", err)
	}
	if limit <= 0 {
		return nil, nil
	}
	if err := s.check("claim"); err != nil {
		return nil, err
	}
	n := now.UnixMilli() // floor: with due scores rounded up, never early
	res, err := claimScript.Run(ctx, s.c, []string{s.key("due")}, s.p, n, owner, ceilMS(now.Add(lease)), limit, ms(s.now())).Slice()
	if err != nil {
		return nil, s.fail(ctx, "claim", err)
	}
	out := make([]timers.Task, 0, len(res))
	for _, v := range res {
		t, err := decodePair(v)
		if err != nil {
			return nil, fmt.Errorf("redistimers: claim: %w", err)
		}
		out = append(out, t)
	}
	return out, nil
}

// NextDue reads the heads of the due and lease indexes.
func (s *Store) NextDue(ctx context.Context) (time.Time, bool, error) {
	if err := s.check("next due"); err != nil {
		return time.Time{}, false, err
	}
	var due, run *redis.ZSliceCmd
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		due = p.ZRangeWithScores(ctx, s.key("due"), 0, 0)
		run = p.ZRangeWithScores(ctx, s.key("run"), 0, 0)
		return nil
	})
	if err != nil {
		return time.Time{}, false, s.fail(ctx, "next due", err)
	}
	best := math.Inf(1)
	for _, z := range append(due.Val(), run.Val()...) {
		best = math.Min(best, z.Score)
	}
	if math.IsInf(best, 1) {
		return time.Time{}, false, nil
	}
	return time.UnixMilli(int64(best)).UTC(), true, nil
}

// Extend renews the leases owner holds among ids, in batches of 1000.
func (s *Store) Extend(ctx context.Context, owner string, ids []string, lease time.Duration) error {
	if err := timers.ValidateOwner(owner, lease); err != nil {
		return fmt.Errorf("redistimers: extend: %w", err)
	}
	if err := s.check("extend"); err != nil {
		return err
	}
	until := ceilMS(s.now().Add(lease))
	for len(ids) > 0 {
		n := min(len(ids), 1000)
		args := []any{s.p, owner, until}
		for _, id := range ids[:n] {
			args = append(args, id)
		}
		if err := extendScript.Run(ctx, s.c, []string{s.key("run")}, args...).Err(); err != nil {
			return s.fail(ctx, "extend", err)
		}
		ids = ids[n:]
	}
	return nil
}

// Finish records the end of owner's run of id.
func (s *Store) Finish(ctx context.Context, id, owner, status string, result any, terr *timers.TaskError) (timers.Task, error) {
	if err := timers.ValidateID(id); err != nil {
		return timers.Task{}, fmt.Errorf("redistimers: finish: %w", err)
	}
	res, err := timers.ValidateFinish(status, result, terr)
	if err != nil {
		return timers.Task{}, fmt.Errorf("redistimers: finish %s: %w", id, err)
	}
	if err := s.check("finish"); err != nil {
		return timers.Task{}, err
	}
	errJSON := ""
	if terr != nil {
		b, _ := json.Marshal(terr)
		errJSON = string(b)
	}
	reply, err := finishScript.Run(ctx, s.c, []string{s.key("run")}, s.p, id, owner, status, string(res), errJSON, ms(s.now())).Slice()
	if err != nil {
		return timers.Task{}, s.fail(ctx, "finish "+id, err)
	}
	return s.outcome("finish", id, reply, func(t timers.Task) error {
		if t.Status == timers.StatusRunning {
			return fmt.Errorf("%w: task %s is now run by %s (attempt %d), not %s", timers.ErrConflict, id, t.Owner, t.Attempt, owner)
		}
		return fmt.Errorf("%w: task %s is %s, not running", timers.ErrConflict, id, t.Status)
	})
}

// Retry sends owner's failed run of id back to waiting until at.
func (s *Store) Retry(ctx context.Context, id, owner string, at time.Time, terr *timers.TaskError) (timers.Task, error) {
	if err := timers.ValidateID(id); err != nil {
		return timers.Task{}, fmt.Errorf("redistimers: retry: %w", err)
	}
	if err := timers.ValidateRetry(at, terr); err != nil {
		return timers.Task{}, fmt.Errorf("redistimers: retry %s: %w", id, err)
	}
	if err := s.check("retry"); err != nil {
		return timers.Task{}, err
	}
	errJSON, _ := json.Marshal(terr)
	reply, err := retryScript.Run(ctx, s.c, []string{s.key("due")}, s.p, id, owner, ceilMS(at),
		strconv.FormatInt(at.UnixNano(), 10), string(errJSON), ms(s.now())).Slice()
	if err != nil {
		return timers.Task{}, s.fail(ctx, "retry "+id, err)
	}
	return s.outcome("retry", id, reply, func(t timers.Task) error {
		if t.Status == timers.StatusRunning {
			return fmt.Errorf("%w: task %s is now run by %s (attempt %d), not %s", timers.ErrConflict, id, t.Owner, t.Attempt, owner)
		}
		return fmt.Errorf("%w: task %s is %s, not running", timers.ErrConflict, id, t.Status)
	})
}

// outcome reads a {'ok'|'conflict'|'notfound', task} reply.
func (s *Store) outcome(op, id string, reply []any, conflict func(timers.Task) error) (timers.Task, error) {
	code, _ := reply[0].(string)
	if code == "notfound" {
		return timers.Task{}, fmt.Errorf("redistimers: %s %s: %w", op, id, timers.ErrNotFound)
	}
	t, err := decodeFlat(id, reply[1])
	if err != nil {
		return t, fmt.Errorf("redistimers: %s: %w", op, err)
	}
	if code == "conflict" {
		return t, fmt.Errorf("redistimers: %s %s: %w", op, id, conflict(t))
	}
	return t, nil
}

// ForcedEnd ends id: a waiting task never runs, a running one is appended to the force-end log
// that every ForcedEnds channel polls.
func (s *Store) ForcedEnd(ctx context.Context, id string) (timers.Task, error) {
	if err := timers.ValidateID(id); err != nil {
		return timers.Task{}, fmt.Errorf("redistimers: forced end: %w", err)
	}
	if err := s.check("forced end"); err != nil {
		return timers.Task{}, err
	}
	reply, err := forcedEndScript.Run(ctx, s.c, []string{s.key("forced")}, s.p, id, ms(s.now())).Slice()
	if err != nil {
		return timers.Task{}, s.fail(ctx, "forced end "+id, err)
	}
	return s.outcome("forced end", id, reply, func(t timers.Task) error {
		return fmt.Errorf("%w: task %s already ended with status %s", timers.ErrConflict, id, t.Status)
	})
}

// Operate applies a node operation to id in one script (timers.Store.Operate); a running task
// force-failed is appended to the force-end log.
func (s *Store) Operate(ctx context.Context, id string, op timers.Op) (timers.Task, error) {
	if err := timers.ValidateID(id); err != nil {
		return timers.Task{}, fmt.Errorf("redistimers: %s: %w", op.Name, err)
	}
	args, err := timers.ValidateOp(op)
	if err != nil {
		return timers.Task{}, fmt.Errorf("redistimers: %s %s: %w", op.Name, id, err)
	}
	if err := s.check(op.Name); err != nil {
		return timers.Task{}, err
	}
	var errJSON string
	if op.Error != nil {
		b, _ := json.Marshal(op.Error)
		errJSON = string(b)
	}
	now := s.now()
	reply, err := operateScript.Run(ctx, s.c, []string{s.key("forced")}, s.p, id, op.Name, ms(now),
		strconv.FormatInt(now.UnixNano(), 10), ceilMS(now), errJSON, args).Slice()
	if err != nil {
		return timers.Task{}, s.fail(ctx, op.Name+" "+id, err)
	}
	if code, _ := reply[0].(string); code == "reqconflict" {
		t, err := decodeFlat(id, reply[1])
		if err != nil {
			return t, fmt.Errorf("redistimers: %s: %w", op.Name, err)
		}
		state, _ := reply[2].(string)
		return t, fmt.Errorf("redistimers: %s %s: %w", op.Name, id, timers.OpRequestConflict(t, op.Name, state))
	}
	return s.outcome(op.Name, id, reply, func(t timers.Task) error { return timers.OpConflict(id, op.Name, t.Status) })
}

// OperateRequest applies a request operation to the request's tasks and records its state, in
// one script (timers.Store.OperateRequest).
func (s *Store) OperateRequest(ctx context.Context, requestID, op string, terr *timers.TaskError) ([]timers.Task, error) {
	errJSON, err := timers.ValidateRequestOp(requestID, op, terr)
	if err != nil {
		return nil, fmt.Errorf("redistimers: %s request: %w", op, err)
	}
	if err := s.check(op + " request"); err != nil {
		return nil, err
	}
	reply, err := operateRequestScript.Run(ctx, s.c, []string{s.key("due")}, s.p, requestID, op, ms(s.now()), errJSON).Slice()
	if err != nil {
		return nil, s.fail(ctx, op+" request "+requestID, err)
	}
	if code, _ := reply[0].(string); code == "conflict" {
		return nil, fmt.Errorf("redistimers: %s request: %w", op, timers.RequestConflict(requestID, op))
	}
	var out []timers.Task
	for _, v := range reply[1].([]any) {
		t, err := decodePair(v)
		if err != nil {
			return nil, fmt.Errorf("redistimers: %s request: %w", op, err)
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// ForcedEnds polls the force-end log every forcedPoll from its current end. While Redis is
// unreachable it keeps trying (nothing can be force-ended meanwhile); if the log's sequence
// goes back (Redis lost its data), it starts over from the beginning of the log.
func (s *Store) ForcedEnds(ctx context.Context) (<-chan string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, errClosed("forced ends")
	}
	// Read where the log ends now, so force-ends from this call on are reported; if Redis
	// cannot say, nothing can be force-ended until it can, and the poller reads it then.
	var cursor int64 = -1
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	n, err := s.c.Get(rctx, s.key("fseq")).Int64()
	cancel()
	if err == nil || errors.Is(err, redis.Nil) {
		cursor = n
	}
	out := make(chan string, 64)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(out)
		s.pollForced(ctx, out, cursor)
	}()
	return out, nil
}

// pollForced delivers the log's entries after cursor (-1: not known yet; start at the log's end).
func (s *Store) pollForced(ctx context.Context, out chan<- string, cursor int64) {
	tick := time.NewTicker(forcedPoll)
	defer tick.Stop()
	for {
		if cursor < 0 {
			n, err := s.c.Get(ctx, s.key("fseq")).Int64()
			if err == nil || errors.Is(err, redis.Nil) {
				cursor = n
			}
		} else {
			var seq *redis.StringCmd
			var log *redis.ZSliceCmd
			_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
				seq = p.Get(ctx, s.key("fseq"))
				log = p.ZRangeByScoreWithScores(ctx, s.key("forced"), &redis.ZRangeBy{Min: "(" + strconv.FormatInt(cursor, 10), Max: "+inf"})
				return nil
			})
			if err == nil || errors.Is(err, redis.Nil) {
				if n, _ := seq.Int64(); n < cursor {
					cursor = 0 // the log was lost; what is in it now is new
					continue
				}
				for _, z := range log.Val() {
					select {
					case out <- z.Member.(string):
					case <-ctx.Done():
						return
					case <-s.done:
						return
					}
					cursor = max(cursor, int64(z.Score))
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-s.done:
			return
		case <-tick.C:
		}
	}
}

// Pending counts the due index.
func (s *Store) Pending(ctx context.Context) (int64, error) {
	if err := s.check("pending"); err != nil {
		return 0, err
	}
	n, err := s.c.ZCard(ctx, s.key("due")).Result()
	if err != nil {
		return 0, s.fail(ctx, "pending", err)
	}
	return n, nil
}

// RequestState reads the state OperateRequest recorded for requestID.
func (s *Store) RequestState(ctx context.Context, requestID string) (string, error) {
	if err := s.check("request state"); err != nil {
		return "", err
	}
	state, err := s.c.HGet(ctx, s.key("rq:"+requestID), "s").Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", s.fail(ctx, "request state", err)
	}
	return state, nil
}
