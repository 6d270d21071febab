-- key_move: move a provider key to the front or the end of its service's rotation order.
-- Moving never changes which key is current (manual primary, time policy's key in use): the
-- policy's pointer is pinned to the current key first (lib/rotation.lua pin_current), so only
-- what comes next changes. Under the usage policy the order breaks ties (the first of the
-- least used keys is picked).
-- include: rotation
-- Units: times in ms since the epoch.
-- KEYS[1] {t:T}:svc:<slug>   KEYS[2] {t:T}:events
-- ARGV[1] key id N   ARGV[2] 'front' | 'end'   ARGV[3] now_ms ('' = Redis TIME)
-- ARGV[4] service slug (event data)   ARGV[5] event stream cap (approximate)
-- returns 1 moved (or already there), 0 no such key, -1 no such service
local n, to = ARGV[1], ARGV[2]
if to ~= 'front' and to ~= 'end' then
  return redis.error_reply('key_move: ARGV[2] must be front or end')
end
local r = read_rotation(KEYS[1], clock_ms(ARGV[3]))
if not r then
  return -1
end
if not position(r, n) then
  return 0
end
pin_current(r, KEYS[2], ARGV[5], ARGV[4])
local order = {}
if to == 'front' then order[1] = n end
for _, id in ipairs(r.ids) do
  if id ~= n then order[#order + 1] = id end
end
if to == 'end' then order[#order + 1] = n end
redis.call('HSET', KEYS[1], 'ids', table.concat(order, ','))
return 1
