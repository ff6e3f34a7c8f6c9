"""The Lua scripts behind rate_limit.RateBudget (each runs atomically inside Redis).

Times are epoch seconds from the caller's clock; every TTL is set relative to that clock so a test
clock never makes keys vanish early. Lua `false` is Redis nil.
"""

# KEYS: tenant park, app park, tenant day counter, tenant window log, tenant window floor,
#       app window log, app window floor, tenant leases.
# ARGV: now, window, limit, app_limit, day_limit, day_end, max_concurrent, lease_until, member,
#       concurrency_retry. Returns {1, now, ''} (go) or {0, not_before, budget}.

ACQUIRE = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local app_limit = tonumber(ARGV[4])
local day_limit = tonumber(ARGV[5])
local day_end = tonumber(ARGV[6])
local max_conc = tonumber(ARGV[7])
local lease_until = tonumber(ARGV[8])
local member = ARGV[9]
local conc_retry = tonumber(ARGV[10])
local ttl = math.ceil(window) + 1

local function parked(key, default_problem)
  local v = redis.call('HMGET', key, 'until', 'problem')
  if v[1] and tonumber(v[1]) > now then
    return {0, v[1], v[2] or default_problem}
  end
  return nil
end

-- When may one more call go in this window? nil = now.
local function window_free_at(log, floor_key, cap)
  if cap <= 0 then return nil end
  redis.call('ZREMRANGEBYSCORE', log, '-inf', now - window)
  local used = redis.call('ZCARD', log)
  local free_at = nil
  if used >= cap then
    local e = redis.call('ZRANGE', log, used - cap, used - cap, 'WITHSCORES')
    free_at = tonumber(e[2]) + window
  end
  -- The floor is the provider's own count (from its headers) when it was higher than ours.
  local fl = redis.call('HMGET', floor_key, 'used', 'until')
  if fl[1] and tonumber(fl[2]) > now and tonumber(fl[1]) >= cap then
    local f = tonumber(fl[2])
    if (not free_at) or f > free_at then free_at = f end
  end
  return free_at
end

local function bump_floor(floor_key)
  local until_ = redis.call('HGET', floor_key, 'until')
  if until_ and tonumber(until_) > now then redis.call('HINCRBY', floor_key, 'used', 1) end
end

local r = parked(KEYS[1], 'minute')
if r then return r end
r = parked(KEYS[2], 'appminute')
if r then return r end
if day_limit > 0 then
  local used = tonumber(redis.call('GET', KEYS[3]) or '0')
  if used >= day_limit then return {0, tostring(day_end), 'day'} end
end
local f = window_free_at(KEYS[4], KEYS[5], limit)
if f then return {0, tostring(f), 'minute'} end
f = window_free_at(KEYS[6], KEYS[7], app_limit)
if f then return {0, tostring(f), 'appminute'} end
if max_conc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', now)
  if redis.call('ZCARD', KEYS[8]) >= max_conc then
    local first = redis.call('ZRANGE', KEYS[8], 0, 0, 'WITHSCORES')
    return {0, tostring(math.min(tonumber(first[2]), now + conc_retry)), 'concurrent'}
  end
  redis.call('ZADD', KEYS[8], lease_until, member)
  redis.call('PEXPIRE', KEYS[8], math.ceil((lease_until - now) * 1000) + 1000)
end
if limit > 0 then
  redis.call('ZADD', KEYS[4], now, member)
  redis.call('EXPIRE', KEYS[4], ttl)
  bump_floor(KEYS[5])
end
if app_limit > 0 then
  redis.call('ZADD', KEYS[6], now, member)
  redis.call('EXPIRE', KEYS[6], ttl)
  bump_floor(KEYS[7])
end
if day_limit > 0 then
  redis.call('INCR', KEYS[3])
  redis.call('EXPIRE', KEYS[3], math.ceil(day_end - now) + 3600)
end
return {1, tostring(now), ''}
"""

# KEYS: tenant window log, tenant floor, app window log, app floor, tenant day counter.
# ARGV: now, window, limit, app_limit, day_limit, minute_remaining, app_remaining, day_remaining, day_end
# ('' when a header was absent).
OBSERVE = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])

local function raise_floor(log, floor_key, cap, remaining)
  if cap <= 0 or remaining == '' then return end
  local implied = cap - tonumber(remaining)
  if implied <= 0 then return end
  local used = redis.call('ZCOUNT', log, '(' .. (now - window), '+inf')
  local fl = redis.call('HMGET', floor_key, 'used', 'until')
  local current = 0
  if fl[1] and tonumber(fl[2]) > now then current = tonumber(fl[1]) end
  if implied > used and implied > current then
    -- The provider's window resets at an unknown moment: assume a whole window from now.
    redis.call('HSET', floor_key, 'used', implied, 'until', tostring(now + window))
    redis.call('PEXPIRE', floor_key, math.ceil(window * 1000) + 1000)
  end
end

raise_floor(KEYS[1], KEYS[2], tonumber(ARGV[3]), ARGV[6])
raise_floor(KEYS[3], KEYS[4], tonumber(ARGV[4]), ARGV[7])
local day_limit = tonumber(ARGV[5])
if day_limit > 0 and ARGV[8] ~= '' then
  local implied = day_limit - tonumber(ARGV[8])
  local used = tonumber(redis.call('GET', KEYS[5]) or '0')
  if implied > used then
    redis.call('SET', KEYS[5], implied, 'EX', math.ceil(tonumber(ARGV[9]) - now) + 3600)
  end
end
return 1
"""

# KEYS: the park hash. ARGV: until, problem, now. A longer park is never shortened.
PARK = """
local current = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
local until_ = tonumber(ARGV[1])
if until_ > current then
  redis.call('HSET', KEYS[1], 'until', ARGV[1], 'problem', ARGV[2])
  -- Relative expiry: `until` comes from the caller's clock, which need not be Redis's.
  redis.call('PEXPIRE', KEYS[1], math.ceil((until_ - tonumber(ARGV[3])) * 1000) + 1000)
  return 1
end
return 0
"""
