-- Shared helper (pasted by @include, after offsets.lua): a user's unread notifications,
-- those after the `upto` mark that are not marked read one by one.
local function unread(inbox, readk, idsk)
  local upto = redis.call('HGET', readk, 'upto') or '0-0'
  local n = 0
  for _, e in ipairs(redis.call('XRANGE', inbox, '(' .. upto, '+')) do
    if redis.call('SISMEMBER', idsk, e[1]) == 0 then n = n + 1 end
  end
  return n
end
