-- Shared helper (pasted by @include): the flush of what a room's batch changed.
-- pm: members, pv: version, pd: pending diff (user -> view seen before, '' = none),
-- ps: pending states (conn -> node channel), pc: connections present.
-- Announces the states of waiting joiners, then publishes one diff (if anything visible
-- changed). Returns the connections in the room.
local function flush(pm, pv, pd, ps, pc, channel, room)
  local pending = redis.call('HGETALL', pd)
  local joins, leaves, updates = {}, {}, {}
  if #pending > 0 then
    redis.call('DEL', pd)
    local before, users = {}, {}
    for i = 1, #pending, 2 do
      before[pending[i]] = pending[i + 1]
      table.insert(users, pending[i])
    end
    table.sort(users)
    for _, user in ipairs(users) do
      local was, now = before[user], redis.call('HGET', pm, user)
      if now then
        if was == '' then table.insert(joins, now)
        elseif now ~= was then table.insert(updates, now) end
      elseif was ~= '' then
        table.insert(leaves, was)
      end
    end
  end
  local changed = #joins + #leaves + #updates > 0
  local version
  if changed then version = redis.call('INCR', pv) end
  local waiting = redis.call('HGETALL', ps)
  if #waiting > 0 then
    version = version or tonumber(redis.call('GET', pv) or '0')
    redis.call('DEL', ps)
    local conns_of, nodes = {}, {}
    for i = 1, #waiting, 2 do
      local conn, node = waiting[i], waiting[i + 1]
      if redis.call('HEXISTS', pc, conn) == 1 then  -- still in the room
        if not conns_of[node] then conns_of[node] = {}; table.insert(nodes, node) end
        table.insert(conns_of[node], conn)
      end
    end
    table.sort(nodes)
    for _, node in ipairs(nodes) do
      -- classic PUBLISH: the node's channel is in another slot (goldwire.store.connect)
      redis.call('PUBLISH', node, 'P ' .. room .. '\n' .. version .. '\n' ..
                 table.concat(conns_of[node], ' '))
    end
  end
  if changed then
    redis.call(PUB, channel, '- ' .. version .. ' ' ..
      '{"type":"presence_update","room":' .. cjson.encode(room) ..
      ',"data":{"kind":"diff","version":' .. version .. ',"joins":[' ..
      table.concat(joins, ',') .. '],"leaves":[' .. table.concat(leaves, ',') ..
      '],"updates":[' .. table.concat(updates, ',') .. ']}}')
  end
  return redis.call('HLEN', pc)  -- connections in the room: the pacer sizes the next wait
end
