-- Shared helper (pasted by @include): a tenant's per-user, per-room, per-connection and
-- per-time key families, `tag .. part .. name`, spelled as goldwire.protocol.keys's
-- ACTIVITY_PARTS (tests/unit/test_activity_lua.py holds the two equal). Every family
-- starts with the tenant's tag, so all of them hash to the tenant's slot.
local function tenant_keys(tag)
  return {
    user_history = tag .. ':hu:',   -- + user
    room_history = tag .. ':hr:',   -- + room
    user_day = tag .. ':ud:',       -- + day .. ':' .. user
    conn_rooms = tag .. ':cr:',     -- + conn
    minute = tag .. ':m:',          -- + minute
    users_hour = tag .. ':ah:',     -- + hour
    users_hour_hll = tag .. ':ahx:',  -- + hour
  }
end
