-- USERS_DAY: a day's distinct users, recomputed from its 24 hours (idempotent).
-- KEYS[1] dirty_days      zset day -> version: days whose users roll-up is due
-- KEYS[2] users_overflow  hash h<hour> / d<day> -> 1: exact set dropped, HLL only
-- KEYS[3] users_day       set: the day's users (exact, until the limit)
-- KEYS[4] users_day_hll   HyperLogLog: the day's users (always)
-- KEYS[5..] hours         the day's 24 hours in order, each its HLL then its exact set
-- ARGV[1] day             the day's member in dirty_days (its number)
-- ARGV[2] version         its score when read: it leaves the set only if no event moved it
-- ARGV[3] exact_limit     distinct users a day keeps exactly
-- ARGV[4] day_ttl         s
local day = tonumber(ARGV[1])
local d = string.format('%d', day)
local users_day, users_day_hll = KEYS[3], KEYS[4]
local exact_limit, day_ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local sets, hlls, exact = {}, {}, redis.call('HEXISTS', KEYS[2], 'd' .. d) == 0
for i = 0, 23 do
  local hll, set = KEYS[5 + 2 * i], KEYS[6 + 2 * i]
  if redis.call('EXISTS', hll) == 1 then
    hlls[#hlls + 1] = hll
    if redis.call('HEXISTS', KEYS[2], 'h' .. string.format('%d', day * 24 + i)) == 1 then
      exact = false
    else
      sets[#sets + 1] = set
    end
  end
end
if #hlls > 0 then
  redis.call('PFMERGE', users_day_hll, unpack(hlls))
  redis.call('EXPIRE', users_day_hll, day_ttl)
end
if exact and #sets > 0 then
  redis.call('SUNIONSTORE', users_day, unpack(sets))
  if redis.call('SCARD', users_day) > exact_limit then exact = false
  else redis.call('EXPIRE', users_day, day_ttl) end
end
if not exact then
  redis.call('DEL', users_day)
  redis.call('HSET', KEYS[2], 'd' .. d, 1)
end
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('ZREM', KEYS[1], ARGV[1]) end
return 1
