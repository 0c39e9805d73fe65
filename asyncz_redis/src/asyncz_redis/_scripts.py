"""The Lua scripts of :class:`asyncz_redis.RedisStore`: one per operation, each one round trip
that runs atomically on the server.

Keys (names derive from ``tasks_key``, see the store):

- ``tasks``: hash, id -> serialized task.
- ``run_times``: sorted set, id -> *due time* (POSIX seconds): the next run time, or the end of
  the lease while a node holds the task. Paused tasks are absent. "Due" (``score <= now``)
  therefore includes claims whose lease lapsed, and the smallest score is the next wake-up.
- ``revisions``: hash, id -> revision (moves at every write; the fencing token).
- ``claims``: hash, id -> ``"<owner> <lease_until> <due>"`` (``due``: the score to restore
  when the claim ends without a write).
- ``claimed``: per node, set of the ids it claimed (heartbeat and departure walk it; entries
  another node took over are dropped lazily).
- ``nodes``: hash, identity -> JSON record; ``node_ends``: sorted set, identity -> when the
  node stopped or its lease ended, for pruning.

Writes that may move a next run time earlier publish ``"<score> <origin>"`` on the changes
channel, so that other nodes wake up (``<origin>``: the writer's node id).
"""

from __future__ import annotations

__all__ = [
    "ACQUIRE",
    "ADD",
    "DUE",
    "HEARTBEAT",
    "LEAVE",
    "NEXT",
    "PAGE",
    "RELEASE",
    "UPDATE",
]

_COMMON = """
local function parse_claim(claim)  -- owner, lease_until, due
  return string.match(claim, '^(.*) (%S+) (%S+)$')
end
local function earlier(a, b)  -- the earlier of two scores; '' or nil: none
  if b == nil or b == '' then return a end
  if a == nil or tonumber(b) < tonumber(a) then return b end
  return a
end
local function announce(channel, score, origin)
  if score ~= nil and channel ~= '' then
    redis.call('PUBLISH', channel, score .. ' ' .. origin)
  end
end
"""

# Known-unrestorable tasks are skipped while their payload is unchanged (same SHA-1), so
# they never fill a batch; a payload replaced by another process is looked at again.
_SKIP = """
local skip = {}
for i = FIRST, #ARGV, 2 do skip[ARGV[i]] = ARGV[i + 1] end
local function skipped(id, payload)
  local digest = skip[id]
  return digest ~= nil and (payload == false or redis.sha1hex(payload) == digest)
end
"""

# KEYS: tasks, run_times, revisions, claims. ARGV: replace ("1"/"0"), origin, channel, then
# (id, payload, score | "") triples. Returns the first id that exists (nothing written)
# unless replace is set; else the new revision of each task. A replaced task's claim ends.
ADD = (
    _COMMON
    + """
local n = #ARGV
if ARGV[1] ~= '1' then
  for i = 4, n, 3 do
    if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then return ARGV[i] end
  end
end
local revisions, first = {}, nil
for i = 4, n, 3 do
  local id, score = ARGV[i], ARGV[i + 2]
  redis.call('HSET', KEYS[1], id, ARGV[i + 1])
  if score == '' then
    redis.call('ZREM', KEYS[2], id)
  else
    redis.call('ZADD', KEYS[2], score, id)
  end
  redis.call('HDEL', KEYS[4], id)
  revisions[#revisions + 1] = redis.call('HINCRBY', KEYS[3], id, 1)
  first = earlier(first, score)
end
announce(ARGV[3], first, ARGV[2])
return revisions
"""
)

# KEYS: tasks, run_times, revisions, claims. ARGV: origin, channel, then (id, expected
# revision ("0": any), payload, score | "") quadruples. A write ends the task's claim.
# Returns (code, revision) per task: 1 written at the new revision, 0 gone, 2 stale (the
# stored revision).
UPDATE = (
    _COMMON
    + """
local out, first = {}, nil
for i = 3, #ARGV, 4 do
  local id, expected, score = ARGV[i], ARGV[i + 1], ARGV[i + 3]
  if redis.call('HEXISTS', KEYS[1], id) == 0 then
    out[#out + 1] = 0
    out[#out + 1] = 0
  else
    local current = tonumber(redis.call('HGET', KEYS[3], id) or '0')
    if expected ~= '0' and current ~= tonumber(expected) then
      out[#out + 1] = 2
      out[#out + 1] = current
    else
      redis.call('HSET', KEYS[1], id, ARGV[i + 2])
      if score == '' then
        redis.call('ZREM', KEYS[2], id)
      else
        redis.call('ZADD', KEYS[2], score, id)
      end
      redis.call('HDEL', KEYS[4], id)
      out[#out + 1] = 1
      out[#out + 1] = redis.call('HINCRBY', KEYS[3], id, 1)
      first = earlier(first, score)
    end
  end
end
announce(ARGV[2], first, ARGV[1])
return out
"""
)

# KEYS: tasks, run_times, revisions, marker. ARGV: max score, count (-1: all), then (id,
# sha1) pairs to skip. Returns the marker's value ("" when it is gone), then (id, payload,
# revision) triples, earliest first.
DUE = (
    _SKIP.replace("FIRST", "3")
    + """
local ids
if tonumber(ARGV[2]) < 0 then
  ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
else
  ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
end
local out = {redis.call('GET', KEYS[4]) or ''}
for _, id in ipairs(ids) do
  local payload = redis.call('HGET', KEYS[1], id)
  if payload and not skipped(id, payload) then
    out[#out + 1] = id
    out[#out + 1] = payload
    out[#out + 1] = redis.call('HGET', KEYS[3], id) or '0'
  end
end
return out
"""
)

# KEYS: tasks, revisions. ARGV: the HSCAN cursor ("0" first), count. Returns the next cursor
# ("0": that was the last page), the ids and the revisions of the page (each one JSON array:
# two reply elements instead of one per task), then the payloads in the same order: one page
# of a listing (HSCAN: every task present for the whole scan comes at least once, maybe twice).
PAGE = """
local page = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local flat = page[2]
local ids, revisions, out = {}, {}, {page[1], '', ''}
for i = 1, #flat, 2 do
  ids[#ids + 1] = flat[i]
  revisions[#revisions + 1] = redis.call('HGET', KEYS[2], flat[i]) or '0'
  out[#out + 1] = flat[i + 1]
end
if #ids > 0 then
  out[2] = cjson.encode(ids)
  out[3] = cjson.encode(revisions)
end
return out
"""

# KEYS: tasks, run_times, revisions, claims, marker, the node's claimed set. ARGV: node,
# now, lease end, limit, orphans ("1": first end every claim the node holds: claims the
# node does not know it has, from a reply it never got or a previous process with the same
# identity), then (id, sha1) pairs to skip. Claims at most ``limit`` tasks due at ``now``
# (unclaimed, or whose claim lapsed: their score is the lease end), earliest first.
# Returns the marker's value, then (id, payload, revision) triples.
ACQUIRE = (
    _COMMON
    + _SKIP.replace("FIRST", "6")
    + """
local node, lease_end, limit = ARGV[1], ARGV[3], tonumber(ARGV[4])
local out = {redis.call('GET', KEYS[5]) or ''}
if ARGV[5] == '1' then
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[6])) do
    local claim = redis.call('HGET', KEYS[4], id)
    if claim then
      local owner, _, due = parse_claim(claim)
      if owner == node then
        redis.call('HDEL', KEYS[4], id)
        redis.call('ZADD', KEYS[2], 'XX', due, id)
      end
    end
  end
  redis.call('DEL', KEYS[6])
end
if limit <= 0 then return out end
local entries = redis.call(
  'ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2], 'WITHSCORES', 'LIMIT', 0, limit + (#ARGV - 5) / 2)
local taken = 0
for i = 1, #entries, 2 do
  if taken >= limit then break end
  local id, due = entries[i], entries[i + 1]
  local payload = redis.call('HGET', KEYS[1], id)
  if payload and not skipped(id, payload) then
    local claim = redis.call('HGET', KEYS[4], id)
    if claim then  -- a lapsed claim: keep the task's own due time
      local _, _, before = parse_claim(claim)
      due = before
    end
    redis.call('HSET', KEYS[4], id, node .. ' ' .. lease_end .. ' ' .. due)
    redis.call('ZADD', KEYS[2], lease_end, id)
    redis.call('SADD', KEYS[6], id)
    local revision = redis.call('HGET', KEYS[3], id)
    if not revision then
      revision = 1
      redis.call('HSET', KEYS[3], id, 1)
    end
    out[#out + 1] = id
    out[#out + 1] = payload
    out[#out + 1] = revision
    taken = taken + 1
  end
end
return out
"""
)

# KEYS: tasks, run_times, revisions, claims, the node's claimed set. ARGV: node, channel,
# then (id, revision, payload, score | "" | "-") quadruples. Writes a task only while
# ``node`` holds it at ``revision`` (no score: deletes it; "-": keeps it paused), and ends
# the claim. Returns per task the
# new revision, 0 when deleted, -1 when refused.
RELEASE = (
    _COMMON
    + """
local node = ARGV[1]
local out, first = {}, nil
for i = 3, #ARGV, 4 do
  local id, revision, score = ARGV[i], ARGV[i + 1], ARGV[i + 3]
  local claim = redis.call('HGET', KEYS[4], id)
  local held = false
  if claim then
    local owner = parse_claim(claim)
    held = owner == node and redis.call('HGET', KEYS[3], id) == revision
  end
  if not held then
    out[#out + 1] = -1
  else
    redis.call('HDEL', KEYS[4], id)
    if score == '' then
      redis.call('HDEL', KEYS[1], id)
      redis.call('ZREM', KEYS[2], id)
      redis.call('HDEL', KEYS[3], id)
      out[#out + 1] = 0
    elseif score == '-' then
      redis.call('HSET', KEYS[1], id, ARGV[i + 2])
      redis.call('ZREM', KEYS[2], id)
      out[#out + 1] = redis.call('HINCRBY', KEYS[3], id, 1)
    else
      redis.call('HSET', KEYS[1], id, ARGV[i + 2])
      redis.call('ZADD', KEYS[2], score, id)
      out[#out + 1] = redis.call('HINCRBY', KEYS[3], id, 1)
      first = earlier(first, score)
    end
  end
  redis.call('SREM', KEYS[5], id)
end
announce(ARGV[2], first, node)
return out
"""
)

# KEYS: nodes, node_ends, claims, run_times, the node's claimed set. ARGV: identity, record
# (JSON), end score, lease end, prune before (score), claimed-set key prefix. Records the
# node, extends every claim it still holds to the lease end, prunes old records.
HEARTBEAT = (
    _COMMON
    + """
local node, lease_end = ARGV[1], ARGV[4]
redis.call('HSET', KEYS[1], node, ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], node)
for _, old in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[5])) do
  redis.call('HDEL', KEYS[1], old)
  redis.call('ZREM', KEYS[2], old)
  redis.call('DEL', ARGV[6] .. old)
end
if ARGV[7] ~= '1' then return true end
for _, id in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  local claim = redis.call('HGET', KEYS[3], id)
  local owner, lease_until, due
  if claim then owner, lease_until, due = parse_claim(claim) end
  if owner ~= node then
    redis.call('SREM', KEYS[5], id)  -- ended, or taken over by another node
  elseif tonumber(lease_end) > tonumber(lease_until) then
    redis.call('HSET', KEYS[3], id, node .. ' ' .. lease_end .. ' ' .. due)
    redis.call('ZADD', KEYS[4], 'XX', lease_end, id)
  end
end
return true
"""
)

# KEYS: nodes, node_ends, claims, run_times, the node's claimed set. ARGV: identity, record
# (JSON, "" to leave the records alone), end score, channel, then ids ("": every id the node
# holds). Ends the node's claims on those tasks without writing them (due again at their
# own time) and, given a record, stores it.
LEAVE = (
    _COMMON
    + """
local node = ARGV[1]
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], node, ARGV[2])
  redis.call('ZADD', KEYS[2], ARGV[3], node)
end
local ids = {}
for i = 5, #ARGV do ids[#ids + 1] = ARGV[i] end
local all = #ids == 0
if all then ids = redis.call('SMEMBERS', KEYS[5]) end
local first = nil
for _, id in ipairs(ids) do
  local claim = redis.call('HGET', KEYS[3], id)
  if claim then
    local owner, _, due = parse_claim(claim)
    if owner == node then
      redis.call('HDEL', KEYS[3], id)
      redis.call('ZADD', KEYS[4], 'XX', due, id)
      first = earlier(first, due)
    end
  end
  redis.call('SREM', KEYS[5], id)
end
if all then redis.call('DEL', KEYS[5]) end
announce(ARGV[4], first, node)
return true
"""
)

# KEYS: tasks, run_times. ARGV: (id, sha1) pairs to skip. Returns the earliest score of a
# task that is not skipped (as a string), or nil.
NEXT = (
    _SKIP.replace("FIRST", "1")
    + """
local entries = redis.call('ZRANGE', KEYS[2], 0, #ARGV / 2, 'WITHSCORES')
for i = 1, #entries, 2 do
  if not skipped(entries[i], redis.call('HGET', KEYS[1], entries[i])) then
    return entries[i + 1]
  end
end
return false
"""
)
