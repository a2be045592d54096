-- Shared helper (pasted by @include): stream offsets `<ms>-<seq>` compared as numbers.
-- newer(a, b): offset a is after offset b; a malformed b is before any well-formed a.
local function newer(a, b)
  local a1, a2 = string.match(a, '^(%d+)-(%d+)$')
  local b1, b2 = string.match(b, '^(%d+)-(%d+)$')
  if not a1 or not b1 then return a1 ~= nil end
  a1, a2, b1, b2 = tonumber(a1), tonumber(a2), tonumber(b1), tonumber(b2)
  return a1 > b1 or (a1 == b1 and a2 > b2)
end
