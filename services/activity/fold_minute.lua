-- FOLD_MINUTE: add one minute's counts to its hour and day, exactly once. They are added
-- as the difference from what was added before (the minute's snapshot, written in the
-- same call), so folding is exactly once whatever crashes or runs twice. The snapshot
-- expires at the very moment the minute does (the minute's TTL is set once, when it is
-- made), so a minute that comes back later (a late event) starts from zero on both sides.
-- KEYS[1] dirty_minutes  zset minute -> version: minutes not yet rolled up
-- KEYS[2] counts         hash field -> count: the minute's counters
-- KEYS[3] folded         hash field -> count: what earlier folds already added
-- KEYS[4] hour           hash field -> count (room fields go to rooms_hour)
-- KEYS[5] day            hash field -> count
-- KEYS[6] rooms_hour     zset room -> messages
-- KEYS[7] rooms_day      zset room -> messages
-- ARGV[1] minute         the minute's member in dirty_minutes
-- ARGV[2] version        its score when read: it leaves the set only if no event moved it
-- ARGV[3] hour_ttl       s
-- ARGV[4] day_ttl        s
local mkey, fkey = KEYS[2], KEYS[3]
local hour_key, day_key, rooms_hour, rooms_day = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local hour_ttl, day_ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local now_counts = redis.call('HGETALL', mkey)
local done = {}
local before = redis.call('HGETALL', fkey)
for i = 1, #before, 2 do done[before[i]] = tonumber(before[i + 1]) end
local changed = {}
for i = 1, #now_counts, 2 do
  local field, n = now_counts[i], tonumber(now_counts[i + 1])
  local delta = n - (done[field] or 0)
  if delta ~= 0 then
    if string.sub(field, 1, 2) == 'r:' then
      local room = string.sub(field, 3)
      redis.call('ZINCRBY', rooms_hour, delta, room)
      redis.call('ZINCRBY', rooms_day, delta, room)
    else
      redis.call('HINCRBY', hour_key, field, delta)
      redis.call('HINCRBY', day_key, field, delta)
    end
    changed[#changed + 1] = field
    changed[#changed + 1] = n
  end
end
if #changed > 0 then
  redis.call('HSET', fkey, unpack(changed))
  local at = redis.call('PEXPIRETIME', mkey)
  if at > 0 then redis.call('PEXPIREAT', fkey, at) end
  redis.call('EXPIRE', hour_key, hour_ttl)
  redis.call('EXPIRE', rooms_hour, hour_ttl)
  redis.call('EXPIRE', day_key, day_ttl)
  redis.call('EXPIRE', rooms_day, day_ttl)
end
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return #changed / 2
