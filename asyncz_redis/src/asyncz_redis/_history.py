"""Run history of :class:`asyncz_redis.RedisStore`, kept in Redis beside the tasks.

Data path: the scheduler's history recorder -> ``add_runs(records)`` (one EVALSHA per batch)
-> the keys below -> ``get_runs`` / ``get_last_runs`` (one EVALSHA each) newest first;
``prune_runs`` (every minute) removes by age and per task in bounded script runs.

Keys (names derive from ``tasks_key``):

- ``<tasks_key>.runs``: hash, *ref* -> the record (JSON list in :class:`RunRecord` field
  order; datetimes as ISO 8601 strings).
- ``<tasks_key>.runs.by_time``: sorted set, ref -> the record's time (POSIX seconds).
- ``<tasks_key>.runs.task.<task id>``: sorted set per task, ref -> time.
- ``<tasks_key>.runs.tasks``: set of the task ids that have records; ``.runs.dirty``: those
  that got records since the last per-task pruning; ``.runs.kept``: the ``max_per_task`` of
  the last pruning (a lower one looks at every task again).

A *ref* is ``"<outcome> <byte length of task id> <task id><run id>"``: scripts read the
outcome (filters) and the task (pruning) from it without decoding the record.
History is not touched by ``remove_all_tasks``: records outlive their tasks until pruned.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from asyncz.tasks.runs import RunRecord

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = ["RedisHistory"]

#: Records one script run of ``add_runs`` writes at most (a bigger batch is split, all
#: parts sent in one pipeline): keeps each script short, Redis responsive.
ADD_CHUNK = 1000
#: Records (or tasks) one script run of ``prune_runs`` removes (looks at) at most.
PRUNE_BUDGET = 1000

_DATES = tuple(
    i
    for i, name in enumerate(RunRecord._fields)
    if name in ("scheduled_run_time", "submitted_at", "started_at", "finished_at")
)
_FIELDS = len(RunRecord._fields)
_dumps = json.JSONEncoder(separators=(",", ":")).encode

_COMMON = """
local function sliced(command, key, items, width)  -- one call per slice (unpack has a limit)
  local step = 1000 * width
  for i = 1, #items, step do
    redis.call(command, key, unpack(items, i, math.min(i + step - 1, #items)))
  end
end
local function bodies(hash, refs)  -- HMGET in slices (unpack has a limit)
  local out = {}
  for i = 1, #refs, 1000 do
    local part = redis.call('HMGET', hash, unpack(refs, i, math.min(i + 999, #refs)))
    for _, body in ipairs(part) do out[#out + 1] = body end
  end
  return out
end
"""

# KEYS: bodies, by_time, tasks, dirty, then the set of each task that has records in the
# batch. ARGV, for each of those tasks: its id, its record count, then (ref, score, body) of
# each record. Few calls per batch: HSET / ZADD / SADD take many members at once.
ADD_RUNS = (
    _COMMON
    + """
local fields, times, ids, j = {}, {}, {}, 1
for i = 5, #KEYS do
  local count = tonumber(ARGV[j + 1])
  ids[#ids + 1] = ARGV[j]
  j = j + 2
  local own = {}
  for _ = 1, count do
    local ref, score = ARGV[j], ARGV[j + 1]
    fields[#fields + 1] = ref
    fields[#fields + 1] = ARGV[j + 2]
    times[#times + 1] = score
    times[#times + 1] = ref
    own[#own + 1] = score
    own[#own + 1] = ref
    j = j + 3
  end
  sliced('ZADD', KEYS[i], own, 2)
end
sliced('HSET', KEYS[1], fields, 2)
sliced('ZADD', KEYS[2], times, 2)
sliced('SADD', KEYS[3], ids, 1)
sliced('SADD', KEYS[4], ids, 1)
return #fields / 2
"""
)

# KEYS: an index (by_time or a task's set), bodies. ARGV: lowest score ("-inf": any), limit
# (-1: all), then the outcomes wanted (none: any). Bodies newest first.
GET_RUNS = (
    _COMMON
    + """
local since, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local want = nil
if #ARGV > 2 then
  want = {}
  for i = 3, #ARGV do want[ARGV[i]] = true end
end
local refs, start, page = {}, 0, 256
if want == nil and limit >= 0 then page = math.max(limit, 1) end
while limit < 0 or #refs < limit do
  local slice = redis.call('ZREVRANGE', KEYS[1], start, start + page - 1, 'WITHSCORES')
  local ended = #slice < 2 * page
  for k = 1, #slice, 2 do
    if tonumber(slice[k + 1]) < since then ended = true break end
    if want == nil or want[string.match(slice[k], '^(%S+) ')] then
      refs[#refs + 1] = slice[k]
      if limit >= 0 and #refs >= limit then break end
    end
  end
  if ended then break end
  start = start + page
end
return bodies(KEYS[2], refs)
"""
)

# KEYS: bodies, then the per-task set of each task. ARGV: the outcomes wanted. The body of
# each task's newest record with one of them, or nil.
LAST_RUNS = """
local want = {}
for i = 1, #ARGV do want[ARGV[i]] = true end
local out = {}
for i = 2, #KEYS do
  local found, start = false, 0
  while true do
    local slice = redis.call('ZREVRANGE', KEYS[i], start, start + 15)
    for _, ref in ipairs(slice) do
      if want[string.match(ref, '^(%S+) ')] then found = ref break end
    end
    if found or #slice < 16 then break end
    start = start + 16
  end
  out[i - 1] = found and redis.call('HGET', KEYS[1], found) or false
end
return out
"""

# KEYS: bodies, by_time, tasks, dirty, kept. ARGV: cutoff score (records below it go),
# max_per_task, budget, per-task key prefix. Returns 1 when work is left (call again).
PRUNE_RUNS = """
local bodies, by_time, tasks, dirty = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local keep, budget, prefix = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local function forget_if_empty(task)
  if redis.call('EXISTS', prefix .. task) == 0 then
    redis.call('SREM', tasks, task)
    redis.call('SREM', dirty, task)
  end
end
local old = redis.call('ZRANGEBYSCORE', by_time, '-inf', '(' .. ARGV[1], 'LIMIT', 0, budget)
local touched = {}
for _, ref in ipairs(old) do
  local head, len = string.match(ref, '^(%S+ (%d+) )')
  local task = string.sub(ref, #head + 1, #head + tonumber(len))
  redis.call('ZREM', prefix .. task, ref)
  redis.call('HDEL', bodies, ref)
  redis.call('ZREM', by_time, ref)
  touched[task] = true
end
for task in pairs(touched) do forget_if_empty(task) end
if #old >= budget then return 1 end
if redis.call('GET', KEYS[5]) ~= ARGV[2] then
  redis.call('SUNIONSTORE', dirty, dirty, tasks)
  redis.call('SET', KEYS[5], ARGV[2])
end
local work = #old
while work < budget do
  local task = redis.call('SPOP', dirty)
  if not task then return 0 end
  local key = prefix .. task
  local extra = redis.call('ZREVRANGE', key, keep, -1)
  for _, ref in ipairs(extra) do
    redis.call('HDEL', bodies, ref)
    redis.call('ZREM', by_time, ref)
  end
  if #extra > 0 then
    redis.call('ZREMRANGEBYRANK', key, 0, -(keep + 1))
    forget_if_empty(task)
  end
  work = work + 1 + #extra
end
return redis.call('SCARD', dirty) > 0 and 1 or 0
"""


def encode_run(record: RunRecord) -> str:
    values: list[Any] = list(record)
    for i in _DATES:
        value = values[i]
        if value is not None:
            values[i] = value.isoformat()
    return _dumps(values)


def decode_run(body: bytes | str) -> RunRecord:
    values = json.loads(body)[:_FIELDS]
    for i in _DATES:
        if i < len(values) and values[i] is not None:
            values[i] = datetime.fromisoformat(values[i])
    return RunRecord(*values)


def run_ref(record: RunRecord) -> str:
    task_id = record.task_id
    return f"{record.outcome} {len(task_id.encode())} {task_id}{record.run_id}"


class RedisHistory:
    """The four history methods of the store contract, on the store's client (a mixin of
    :class:`~asyncz_redis.RedisStore`, which calls :meth:`_history_scripts` on connecting)."""

    tasks_key: str

    @property
    def client(self) -> Redis:
        raise NotImplementedError

    def _history_keys(self) -> None:
        base = f"{self.tasks_key}.runs"
        self.runs_key = base
        self.runs_by_time_key = f"{base}.by_time"
        self.runs_task_prefix = f"{base}.task."
        self._runs_sets = [f"{base}.tasks", f"{base}.dirty"]
        self._runs_kept_key = f"{base}.kept"

    def _history_scripts(self, client: Redis) -> list[AsyncScript]:
        """Register the scripts on ``client``; returned to be loaded up front."""
        self._add_runs = client.register_script(ADD_RUNS)
        self._get_runs = client.register_script(GET_RUNS)
        self._last_runs = client.register_script(LAST_RUNS)
        self._prune_runs = client.register_script(PRUNE_RUNS)
        return [self._add_runs, self._get_runs, self._last_runs, self._prune_runs]

    async def add_runs(self, records: Sequence[RunRecord]) -> None:
        """One round trip: one script run per :data:`ADD_CHUNK` records, pipelined."""
        if not records:
            return
        calls: list[tuple[list[str], list[Any]]] = []
        head = [self.runs_key, self.runs_by_time_key, *self._runs_sets]
        prefix = self.runs_task_prefix
        for start in range(0, len(records), ADD_CHUNK):
            by_task: dict[str, list[Any]] = {}
            for record in records[start : start + ADD_CHUNK]:
                task_id = record.task_id
                own = by_task.get(task_id)
                if own is None:
                    own = by_task[task_id] = []
                own += (run_ref(record), repr(record.time.timestamp()), encode_run(record))
            args: list[Any] = []
            for task_id, own in by_task.items():
                args += (task_id, len(own) // 3, *own)
            calls.append(([*head, *(prefix + task_id for task_id in by_task)], args))
        if len(calls) == 1:
            keys, args = calls[0]
            await self._add_runs(keys=keys, args=args)
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                await self._add_runs(keys=keys, args=args, client=pipe)
            await pipe.execute()

    async def get_runs(
        self,
        task_id: str | None = None,
        *,
        limit: int | None = 50,
        since: datetime | None = None,
        outcome: str | Sequence[str] | None = None,
    ) -> list[RunRecord]:
        if limit is not None and limit <= 0:
            return []
        index = self.runs_by_time_key if task_id is None else self.runs_task_prefix + task_id
        outcomes = [outcome] if isinstance(outcome, str) else list(outcome or ())
        if outcome is not None and not outcomes:
            return []
        lowest = "-inf" if since is None else repr(since.timestamp())
        args: list[str | int] = [lowest, -1 if limit is None else limit, *outcomes]
        found = await self._get_runs(keys=[index, self.runs_key], args=args)
        return [decode_run(body) for body in found if body is not None]

    async def get_last_runs(
        self, task_ids: Sequence[str], outcomes: Sequence[str]
    ) -> dict[str, RunRecord]:
        ids = list(dict.fromkeys(task_ids))
        if not ids or not outcomes:
            return {}
        prefix = self.runs_task_prefix
        keys = [self.runs_key, *(prefix + task_id for task_id in ids)]
        found = await self._last_runs(keys=keys, args=list(outcomes))
        return {
            task_id: decode_run(body)
            for task_id, body in zip(ids, found, strict=False)
            if body is not None
        }

    async def prune_runs(self, now: datetime, max_age: float, max_per_task: int) -> None:
        """Bounded script runs (:data:`PRUNE_BUDGET` records or tasks each) until done."""
        cutoff = repr((now - timedelta(seconds=max_age)).timestamp())
        keys = [self.runs_key, self.runs_by_time_key, *self._runs_sets, self._runs_kept_key]
        args: list[str | int] = [cutoff, max(0, int(max_per_task)), PRUNE_BUDGET]
        args.append(self.runs_task_prefix)
        while await self._prune_runs(keys=keys, args=args):
            pass
