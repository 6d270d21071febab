-- key_remove: delete a provider key (its ciphertext included) and take it out of rotation.
-- Deleting the current key of a manual or time service moves `current` to the next usable key
-- at once (key.rotated, reason 'deleted'). The weighted cycle starts again (lib/rotation.lua).
-- include: rotation
-- Units: times in ms since the epoch.
-- KEYS[1] {t:T}:svc:<slug>   KEYS[2] {t:T}:events
-- ARGV[1] key id N   ARGV[2] now_ms ('' = Redis TIME)   ARGV[3] service slug (event data)
-- ARGV[4] event stream cap (approximate)
-- returns 1 removed, 0 no such key
-- Every pointer that named N is moved, since N never comes back: 'cur' (manual, time) to the key
-- that is current now; 'mcur' (the manual primary put aside while the service uses another
-- policy, service_update.lua) to the key after N in rotation order; with no key left, cleared.
local n = ARGV[1]
local r, was_current = rotation_with_key(KEYS[1], n, ARGV[2])
if not r then
  return 0
end
local to = nil
if was_current == n then
  r.active[n] = false
  to = next_after(r, n)
end

local kept = {}
local successor = nil
local seen = false
for _, id in ipairs(r.ids) do
  if id == n then
    seen = true
  else
    kept[#kept + 1] = id
    if seen and not successor then successor = id end
  end
end
successor = successor or kept[1]
redis.call('HSET', KEYS[1], 'ids', table.concat(kept, ','))
redis.call('HDEL', KEYS[1],
  'l:' .. n, 'c:' .. n, 'a:' .. n, 'm:' .. n, 't:' .. n, 'x:' .. n, 'n:' .. n, 'k:' .. n,
  'w:' .. n, 'q:' .. n, 'lu:' .. n, 'dr:' .. n, 'f:' .. n, 'fw:' .. n, 'b:' .. n, 'r:' .. n)
restart_weighted(KEYS[1], r.ids)
if r.cooling and r.cooling[n] then
  r.cooling[n] = nil
  store_cooling(KEYS[1], r.cooling)
end

local pointers = redis.call('HMGET', KEYS[1], 'cur', 'mcur')
for i, field in ipairs({'cur', 'mcur'}) do
  local target = nil
  if field == r.pointer_field and was_current == n then
    target = to or successor
  elseif pointers[i] == n then
    target = (field == r.pointer_field and was_current) or successor
  end
  if target then
    redis.call('HSET', KEYS[1], field, target)
  elseif pointers[i] == n then
    redis.call('HDEL', KEYS[1], field)
  end
end
if to then
  emit_rotated(r, KEYS[2], ARGV[4], ARGV[3], n, to, 'deleted')
end
return 1
