-- Shared helper (pasted by @include): a member's view, built by hand so equal views
-- are equal strings.
local function view(user, name, status, count, meta)
  local n = 'null'
  if name ~= '' then n = cjson.encode(name) end
  return '{"user":{"id":' .. cjson.encode(user) .. ',"name":' .. n .. '},"status":"' .. status ..
         '","connections":' .. count .. ',"meta":' .. meta .. '}'
end
