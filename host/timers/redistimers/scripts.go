package redistimers

import (
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/trellis-run/trellis/host/timers"
)

// Every script takes the key prefix as ARGV[1] and reaches task hashes through it, so on Redis
// Cluster the prefix must carry a hash tag (trellis:{app}:timers:) to keep all keys in one slot.
// KEYS[1] is always a key under the prefix, for routing.
//
// Keys under the prefix P:
//
//	P t:<id>   hash: one task (fields below; empty ones are not stored)
//	P due      zset: waiting ids by StartTime, in ms rounded up (never early)
//	P run      zset: running ids by lease expiry in ms
//	P keys     hash: date-field key -> id of the waiting task holding it
//	P all      zset: every id by creation sequence (List, newest first)
//	P seq      string: the creation sequence
//	P counts   hash: fullName "\0" status -> number of tasks (List's totals)
//	P fseq     string: the force-end sequence
//	P forced   zset: ids force-ended while running, by force-end sequence (last 10,000)
//	P rq:<requestId>  hash: the state of a request an operation holds (s paused|revoked, e the
//	           error a revoke ends its tasks with); a revoked one expires after RETAIN
//	P rt:<requestId>  set: the ids of the request's tasks (OperateRequest); expires RETAIN after
//	           its last task was created or the request resumed, never while it is paused
//
// Task hash fields: fn fullName, f funcName, ty taskType, a argDict JSON, st StartTime (Unix ns),
// s status, r result JSON, e error JSON, rq requestId, n nodeId, k key, at attempt, o owner,
// l lease expiry ms, c createdAt ms, u updatedAt ms (absent: createdAt), sa startedAt ms, ea endedAt ms,
// fs firstStartedAt ms (set by the first claim), q sequence, pd a paused task's due score (it
// goes back to P due with it on resume), pw "request" for a task its request's pause holds.
var prelude = `
local RETAIN = ` + strconv.Itoa(int(timers.RequestRetention/time.Second)) + `
local P = ARGV[1]
local function tkey(id) return P .. 't:' .. id end
local function count(fn, st, d)
	if fn then redis.call('HINCRBY', P .. 'counts', fn .. '\0' .. st, d) end
end
local function setstatus(k, old, new)
	count(redis.call('HGET', k, 'fn'), old, -1)
	count(redis.call('HGET', k, 'fn'), new, 1)
	redis.call('HSET', k, 's', new)
end
-- unkey frees the key a waiting task holds, if it still holds it.
local function unkey(k, id)
	local key = redis.call('HGET', k, 'k')
	if key and key ~= '' and redis.call('HGET', P .. 'keys', key) == id then
		redis.call('HDEL', P .. 'keys', key)
	end
end
-- drop deletes a waiting task outright (a key replacement).
local function drop(id)
	local k = tkey(id)
	if redis.call('HGET', k, 's') ~= 'waiting' then return false end
	count(redis.call('HGET', k, 'fn'), 'waiting', -1)
	local rq = redis.call('HGET', k, 'rq')
	if rq then redis.call('SREM', P .. 'rt:' .. rq, id) end
	redis.call('DEL', k)
	redis.call('ZREM', P .. 'due', id)
	redis.call('ZREM', P .. 'all', id)
	return true
end
-- reqstate is the state OperateRequest recorded for request rq (false for none) and, for a
-- revoked one, the error its tasks end with.
local function reqstate(rq)
	if not rq or rq == '' then return false, false end
	local v = redis.call('HMGET', P .. 'rq:' .. rq, 's', 'e')
	return v[1], v[2]
end
`

func script(body string) *redis.Script { return redis.NewScript(prelude + body) }

// createScript: ARGV id, key, status (waiting|running), score (due ms or lease expiry ms),
// requestId, now ms, then field/value pairs. Returns {'exists'} or {'ok', replaced ids, HGETALL}.
// A waiting task created in a paused request is paused with it, one created in a revoked
// request fails at once (OperateRequest); neither holds a key, and the failed one replaces none.
var createScript = script(`
local id, key, status, score, rq, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local k = tkey(id)
if redis.call('EXISTS', k) == 1 then return {'exists'} end
local rs, rerr = false, false
if status == 'waiting' then rs, rerr = reqstate(rq) end
local replaced = {}
if key ~= '' and status == 'waiting' and rs ~= 'revoked' then
	local old = redis.call('HGET', P .. 'keys', key)
	if old and drop(old) then table.insert(replaced, old) end
	if rs == 'paused' then
		redis.call('HDEL', P .. 'keys', key)
	else
		redis.call('HSET', P .. 'keys', key, id)
	end
end
local seq = redis.call('INCR', P .. 'seq')
local fields = {}
for i = 8, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', k, 'q', seq, 's', status, unpack(fields))
redis.call('ZADD', P .. 'all', seq, id)
if rs == 'paused' then
	status = 'paused'
	redis.call('HSET', k, 's', status, 'pd', score, 'pw', 'request')
	redis.call('HDEL', k, 'k')
elseif rs == 'revoked' then
	status = 'fail'
	redis.call('HSET', k, 's', status, 'e', rerr, 'ea', now)
	redis.call('HDEL', k, 'k')
elseif status == 'waiting' then
	redis.call('ZADD', P .. 'due', score, id)
else
	redis.call('ZADD', P .. 'run', score, id)
end
count(redis.call('HGET', k, 'fn'), status, 1)
if rq ~= '' then
	redis.call('SADD', P .. 'rt:' .. rq, id)
	if rs ~= 'paused' then redis.call('EXPIRE', P .. 'rt:' .. rq, RETAIN) end
end
return {'ok', replaced, redis.call('HGETALL', k)}
`)

// removeKeyScript: ARGV key. Returns the removed ids.
var removeKeyScript = script(`
local key = ARGV[2]
local id = redis.call('HGET', P .. 'keys', key)
if not id then return {} end
redis.call('HDEL', P .. 'keys', key)
if drop(id) then return {id} end
return {}
`)

// claimScript: ARGV now ms, owner, lease expiry ms, limit, updated ms. Expired leases first,
// then due waiting tasks, earliest first. Returns {id, HGETALL} of each claimed task.
var claimScript = script(`
local now, owner, lease, limit, upd = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'run', '-inf', now, 'LIMIT', 0, limit)) do
	local k = tkey(id)
	if redis.call('HGET', k, 's') == 'running' then
		redis.call('HINCRBY', k, 'at', 1)
		redis.call('HSET', k, 'o', owner, 'l', lease, 'sa', now, 'u', upd)
		redis.call('HSETNX', k, 'fs', now)
		redis.call('ZADD', P .. 'run', lease, id)
		out[#out + 1] = {id, redis.call('HGETALL', k)}
	else
		redis.call('ZREM', P .. 'run', id)
	end
end
if #out < limit then
	for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'due', '-inf', now, 'LIMIT', 0, limit - #out)) do
		redis.call('ZREM', P .. 'due', id)
		local k = tkey(id)
		if redis.call('HGET', k, 's') == 'waiting' then
			setstatus(k, 'waiting', 'running')
			unkey(k, id)
			redis.call('HINCRBY', k, 'at', 1)
			redis.call('HSET', k, 'o', owner, 'l', lease, 'sa', now, 'u', upd)
			redis.call('HSETNX', k, 'fs', now)
			redis.call('ZADD', P .. 'run', lease, id)
			out[#out + 1] = {id, redis.call('HGETALL', k)}
		end
	end
end
return out
`)

// extendScript: ARGV owner, lease expiry ms, ids...
var extendScript = script(`
local owner, lease = ARGV[2], ARGV[3]
for i = 4, #ARGV do
	local id = ARGV[i]
	local k = tkey(id)
	local v = redis.call('HMGET', k, 's', 'o')
	if v[1] == 'running' and v[2] == owner then
		redis.call('HSET', k, 'l', lease)
		redis.call('ZADD', P .. 'run', lease, id)
	end
end
return 0
`)

// finishScript: ARGV id, owner, status, result JSON, error JSON (” = none), now ms.
// Returns {'notfound'}, {'conflict', task} or {'ok', task}.
var finishScript = script(`
local id, owner, status, result, err, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local k = tkey(id)
if redis.call('EXISTS', k) == 0 then return {'notfound'} end
local v = redis.call('HMGET', k, 's', 'o')
if v[1] ~= 'running' or v[2] ~= owner then return {'conflict', redis.call('HGETALL', k)} end
setstatus(k, 'running', status)
redis.call('HSET', k, 'r', result, 'u', now, 'ea', now)
redis.call('HDEL', k, 'l')
if err ~= '' then redis.call('HSET', k, 'e', err) else redis.call('HDEL', k, 'e') end
redis.call('ZREM', P .. 'run', id)
return {'ok', redis.call('HGETALL', k)}
`)

// retryScript: ARGV id, owner, due ms (rounded up), StartTime ns, error JSON, now ms.
// Returns {'notfound'}, {'conflict', task} or {'ok', task}. The task goes back to the due index
// as a waiting task without a key; its attempt stays (the next claim adds one).
var retryScript = script(`
local id, owner, due, start, err, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local k = tkey(id)
if redis.call('EXISTS', k) == 0 then return {'notfound'} end
local v = redis.call('HMGET', k, 's', 'o')
if v[1] ~= 'running' or v[2] ~= owner then return {'conflict', redis.call('HGETALL', k)} end
redis.call('HSET', k, 'st', start, 'e', err, 'u', now)
redis.call('HDEL', k, 'l', 'k')
redis.call('ZREM', P .. 'run', id)
-- A retry in a paused request waits paused, one in a revoked request ends (OperateRequest).
local rs, rerr = reqstate(redis.call('HGET', k, 'rq'))
if rs == 'paused' then
	setstatus(k, 'running', 'paused')
	redis.call('HSET', k, 'pd', due, 'pw', 'request')
elseif rs == 'revoked' then
	setstatus(k, 'running', 'fail')
	redis.call('HSET', k, 'e', rerr, 'ea', now)
else
	setstatus(k, 'running', 'waiting')
	redis.call('ZADD', P .. 'due', due, id)
end
return {'ok', redis.call('HGETALL', k)}
`)

// forcedEndScript: ARGV id, now ms. Returns {'notfound'}, {'conflict', task} or
// {'ok', task, wasRunning}.
var forcedEndScript = script(`
local id, now = ARGV[2], ARGV[3]
local k = tkey(id)
if redis.call('EXISTS', k) == 0 then return {'notfound'} end
local st = redis.call('HGET', k, 's')
local running = 0
if st == 'waiting' or st == 'paused' then
	redis.call('ZREM', P .. 'due', id)
	unkey(k, id)
	redis.call('HDEL', k, 'pd', 'pw')
elseif st == 'running' then
	redis.call('ZREM', P .. 'run', id)
	redis.call('HDEL', k, 'l')
	local n = redis.call('INCR', P .. 'fseq')
	redis.call('ZADD', P .. 'forced', n, id)
	redis.call('ZREMRANGEBYRANK', P .. 'forced', 0, -10001)
	running = 1
else
	return {'conflict', redis.call('HGETALL', k)}
end
setstatus(k, st, 'forcedEnd')
redis.call('HSET', k, 'u', now, 'ea', now)
return {'ok', redis.call('HGETALL', k), running}
`)

// listScript: ARGV cursor (a ZREVRANGEBYSCORE max: '+inf' or '(seq'), fullName, status,
// matches to skip, matches wanted, entries to examine at most. Scans P all newest first.
// Returns {{id, HGETALL}..., skip left, last score examined, 1 if the index ended}.
var listScript = script(`
local cursor, fn, st, skip, want, budget = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local entries = redis.call('ZREVRANGEBYSCORE', P .. 'all', cursor, '-inf', 'WITHSCORES', 'LIMIT', 0, budget)
local out = {}
local last = ''
for i = 1, #entries, 2 do
	local id = entries[i]
	last = entries[i + 1]
	local k = tkey(id)
	local v = redis.call('HMGET', k, 'fn', 's')
	if v[1] and (fn == '' or v[1] == fn) and (st == '' or v[2] == st) then
		if skip > 0 then
			skip = skip - 1
		else
			out[#out + 1] = {id, redis.call('HGETALL', k)}
			if #out >= want then return {out, skip, last, 0} end
		end
	end
end
local ended = 0
if #entries < 2 * budget then ended = 1 end
return {out, skip, last, ended}
`)

// operateScript: ARGV id, op, now ms, now ns, due ms of now (rounded up), error JSON, argDict
// JSON (” = keep). Returns {'notfound'}, {'conflict', task}, {'reqconflict', task, request
// state} or {'ok', task, wasRunning}; a running task force-failed joins the force-end log, as
// forcedEndScript's.
var operateScript = script(`
local id, op, now, nowns, due, err, args = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local k = tkey(id)
if redis.call('EXISTS', k) == 0 then return {'notfound'} end
local st = redis.call('HGET', k, 's')
local from = {pause = {waiting = 1}, resume = {paused = 1}, skip = {waiting = 1, paused = 1, fail = 1},
	forcedFail = {waiting = 1, paused = 1, running = 1}, retry = {fail = 1}}
if not (from[op] and from[op][st]) then return {'conflict', redis.call('HGETALL', k)} end
local rs = reqstate(redis.call('HGET', k, 'rq'))
if rs == 'revoked' or (op == 'resume' and redis.call('HGET', k, 'pw') == 'request') then
	return {'reqconflict', redis.call('HGETALL', k), rs or ''}
end
local running = 0
local function unwait()
	if st == 'waiting' then
		redis.call('ZREM', P .. 'due', id)
		unkey(k, id)
	end
	redis.call('HDEL', k, 'k', 'pd', 'pw')
end
if op == 'resume' and rs == 'paused' then
	-- Back to waiting in a paused request: its request's pause holds it.
	redis.call('HSET', k, 'pw', 'request', 'u', now)
elseif op == 'retry' and rs == 'paused' then
	redis.call('HDEL', k, 'k', 'ea')
	redis.call('HSET', k, 'st', nowns, 'u', now, 'pd', due, 'pw', 'request')
	if args ~= '' then redis.call('HSET', k, 'a', args) end
	setstatus(k, st, 'paused')
elseif op == 'pause' and st == 'waiting' then
	local score = redis.call('ZSCORE', P .. 'due', id) or due
	unwait()
	redis.call('HSET', k, 'pd', score, 'u', now)
	setstatus(k, st, 'paused')
elseif op == 'resume' and st == 'paused' then
	local score = redis.call('HGET', k, 'pd') or due
	redis.call('HDEL', k, 'pd')
	redis.call('ZADD', P .. 'due', score, id)
	redis.call('HSET', k, 'u', now)
	setstatus(k, st, 'waiting')
elseif op == 'skip' and (st == 'waiting' or st == 'paused' or st == 'fail') then
	unwait()
	redis.call('HSET', k, 'u', now, 'ea', now)
	setstatus(k, st, 'success')
elseif op == 'forcedFail' and (st == 'waiting' or st == 'paused' or st == 'running') then
	unwait()
	if st == 'running' then
		redis.call('ZREM', P .. 'run', id)
		redis.call('HDEL', k, 'l')
		local n = redis.call('INCR', P .. 'fseq')
		redis.call('ZADD', P .. 'forced', n, id)
		redis.call('ZREMRANGEBYRANK', P .. 'forced', 0, -10001)
		running = 1
	end
	redis.call('HSET', k, 'e', err, 'u', now, 'ea', now)
	setstatus(k, st, 'fail')
elseif op == 'retry' and st == 'fail' then
	redis.call('HDEL', k, 'k', 'pd', 'ea')
	redis.call('HSET', k, 'st', nowns, 'u', now)
	if args ~= '' then redis.call('HSET', k, 'a', args) end
	redis.call('ZADD', P .. 'due', due, id)
	setstatus(k, st, 'waiting')
else
	return {'conflict', redis.call('HGETALL', k)}
end
return {'ok', redis.call('HGETALL', k), running}
`)

// operateRequestScript: ARGV requestId, op (pause|resume|revoke), now ms, error JSON (revoke).
// Returns {'conflict'} (pause or resume of a revoked request) or {'ok', {{id, HGETALL}...}} of
// the tasks it changed.
var operateRequestScript = script(`
local rq, op, now, err = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local sk, ik = P .. 'rq:' .. rq, P .. 'rt:' .. rq
if redis.call('HGET', sk, 's') == 'revoked' and op ~= 'revoke' then return {'conflict'} end
if op == 'pause' then
	redis.call('HSET', sk, 's', 'paused')
	redis.call('PERSIST', sk)
	redis.call('PERSIST', ik)
elseif op == 'resume' then
	redis.call('DEL', sk)
	redis.call('EXPIRE', ik, RETAIN)
else
	redis.call('HSET', sk, 's', 'revoked', 'e', err)
	redis.call('EXPIRE', sk, RETAIN)
	redis.call('EXPIRE', ik, RETAIN)
end
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', ik)) do
	local k = tkey(id)
	local st = redis.call('HGET', k, 's')
	local changed = true
	if op == 'pause' and st == 'waiting' then
		local score = redis.call('ZSCORE', P .. 'due', id) or now
		redis.call('ZREM', P .. 'due', id)
		unkey(k, id)
		redis.call('HDEL', k, 'k')
		redis.call('HSET', k, 'pd', score, 'pw', 'request', 'u', now)
		setstatus(k, st, 'paused')
	elseif op == 'resume' and st == 'paused' and redis.call('HGET', k, 'pw') == 'request' then
		local score = redis.call('HGET', k, 'pd') or now
		redis.call('HDEL', k, 'pd', 'pw')
		redis.call('ZADD', P .. 'due', score, id)
		redis.call('HSET', k, 'u', now)
		setstatus(k, st, 'waiting')
	elseif op == 'revoke' and (st == 'waiting' or st == 'paused') then
		if st == 'waiting' then
			redis.call('ZREM', P .. 'due', id)
			unkey(k, id)
		end
		redis.call('HDEL', k, 'k', 'pd', 'pw')
		redis.call('HSET', k, 'e', err, 'u', now, 'ea', now)
		setstatus(k, st, 'fail')
	else
		changed = false
	end
	if changed then out[#out + 1] = {id, redis.call('HGETALL', k)} end
end
return {'ok', out}
`)
