"""The Lua scripts the limiter runs, each call one atomic Redis operation (EVALSHA).

Both read the clock with ``TIME`` on the Redis server, so Lambda instances whose clocks disagree
still agree on every bucket. A script that calls ``TIME`` and then writes needs effects
replication, the default since Redis 5 (and the only mode since Redis 7).

Every key a script touches is passed in ``KEYS`` and shares one hash tag, so that on a Redis
Cluster the whole call runs on one shard (the cluster refuses a script whose keys span slots).

Times are integer microseconds: the emission interval is rounded up to a whole microsecond by
:attr:`Policy.interval_us`, so every sum and comparison below is exact in Lua's doubles.
"""

from __future__ import annotations

__all__ = ["ACQUIRE", "HIT", "SETTLE"]

# GCRA over one bucket: what every proxied request runs, so it does no more than it must, and
# answers one integer rather than an array.
#
# KEYS[1]  the bucket, holding its theoretical arrival time (TAT) in microseconds
# ARGV     step_us (interval_us * cost), tolerance_us (interval_us * limit)
# Reply    owed >= 0 when admitted, -1 - owed when denied; owed is TAT minus now after the
#          request (admitted) or before it (denied)
HIT = """
local clock = redis.call('TIME')
local now = clock[1] * 1000000 + clock[2]
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
  tat = now
end
local new_tat = tat + ARGV[1]
if new_tat - now > tonumber(ARGV[2]) then
  return -1 - (tat - now)
end
if new_tat > now then
  local ttl = math.ceil((new_tat - now) / 1000)
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl)
end
return new_tat - now
"""

# GCRA over one or more buckets, all or nothing: the request is admitted only if every bucket
# admits it, and only then does any bucket's theoretical arrival time (TAT) move.
#
# KEYS[1..n]  bucket keys, each holding its TAT; KEYS[n+1] optional trust marker
# ARGV[1]     n; then per bucket: interval_us, limit, cost, skip ('1': leave this bucket alone
#             while the trust marker exists)
# Reply       {admitted, state_1, owed_1, ..., state_n, owed_n}; state 1 admits, 0 denies,
#             2 skipped; owed is TAT minus now after the request (admitted) or before it (denied)
ACQUIRE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local n = tonumber(ARGV[1])
local trusted = #KEYS > n and redis.call('EXISTS', KEYS[n + 1]) == 1
local reply = {1}
local moved = {}
for i = 1, n do
  local at = 2 + (i - 1) * 4
  local interval = tonumber(ARGV[at])
  local limit = tonumber(ARGV[at + 1])
  local cost = tonumber(ARGV[at + 2])
  if trusted and ARGV[at + 3] == '1' then
    reply[#reply + 1] = 2
    reply[#reply + 1] = 0
  else
    local tat = tonumber(redis.call('GET', KEYS[i]) or 0)
    if tat < now then
      tat = now
    end
    local new_tat = tat + interval * cost
    if new_tat - now > interval * limit then
      reply[1] = 0
      reply[#reply + 1] = 0
      reply[#reply + 1] = tat - now
    else
      if new_tat > now then
        moved[i] = new_tat
      end
      reply[#reply + 1] = 1
      reply[#reply + 1] = new_tat - now
    end
  end
end
if reply[1] == 1 then
  for i, tat in pairs(moved) do
    redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000))
  end
end
return reply
"""

# Give back what ACQUIRE took, once the answer shows it was not a failed login.
#
# KEYS[1..n]  bucket keys; KEYS[n+1] trust marker
# ARGV[1]     n; ARGV[2] seconds to mark the trust marker for (0: leave it)
#             then per bucket: action ('clear' or 'refund'), interval_us, cost, skip
# Reply       1 if the trust marker existed before this call, else 0
SETTLE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local n = tonumber(ARGV[1])
local trust_seconds = tonumber(ARGV[2])
local trusted = #KEYS > n and redis.call('EXISTS', KEYS[n + 1]) == 1
for i = 1, n do
  local at = 3 + (i - 1) * 4
  if not (trusted and ARGV[at + 3] == '1') then
    if ARGV[at] == 'clear' then
      redis.call('DEL', KEYS[i])
    else
      local tat = tonumber(redis.call('GET', KEYS[i]) or 0)
      local back = tat - tonumber(ARGV[at + 1]) * tonumber(ARGV[at + 2])
      if back > now then
        local ttl = math.ceil((back - now) / 1000)
        redis.call('SET', KEYS[i], string.format('%.0f', back), 'PX', ttl)
      elseif tat > 0 then
        redis.call('DEL', KEYS[i])
      end
    end
  end
end
if trust_seconds > 0 and #KEYS > n then
  redis.call('SET', KEYS[n + 1], '1', 'EX', trust_seconds)
end
if trusted then
  return 1
end
return 0
"""
