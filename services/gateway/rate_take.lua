-- Take `cost` tokens from a token bucket refilled at `rate` per second up to `burst`.
-- A negative cost gives tokens back (a refund). The clock is Redis's own (TIME).
-- KEYS[1] bucket   the bucket (hash: t = tokens, s = stamp in ms)
-- ARGV[1] rate     tokens per second
-- ARGV[2] burst    the most tokens the bucket holds
-- ARGV[3] cost     tokens to take (negative: to give back)
-- Returns {taken 0/1, retry after ms}.
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 't', 's')
local tokens, stamp = tonumber(b[1]), tonumber(b[2])
if tokens == nil or stamp == nil then tokens, stamp = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate / 1000)
local ok, wait = 0, 0
if tokens >= cost then
  tokens, ok = math.min(burst, tokens - cost), 1
else
  wait = math.ceil((cost - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 't', string.format('%.6f', tokens), 's', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
return {ok, wait}
