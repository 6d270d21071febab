-- key_update: change a provider key's label, active flag or daily limit. Disabling the current
-- key of a manual or time service moves `current` to the next usable key at once (key.rotated,
-- reason 'disabled'); enabling a key that was disabled or has expired restarts its lifetime
-- (time policy: t:N and x:N cleared, so it enters rotation again at its next delivery) and
-- never takes over from the current key (the pointer is pinned to it first). Enabling,
-- disabling or re-weighing a key restarts the weighted cycle (lib/rotation.lua). Enabling also
-- clears what key health left (report.lua): the reason a report disabled it, its failures,
-- its breaker and any cooldown, so a person's enable puts it back in rotation at once.
-- include: rotation
-- Units: times in ms since the epoch.
-- KEYS[1] {t:T}:svc:<slug>   KEYS[2] {t:T}:events
-- ARGV[1] key id N   ARGV[2] now_ms ('' = Redis TIME)   ARGV[3] service slug (event data)
-- ARGV[4] event stream cap (approximate)
-- ARGV[5 ..] field/value pairs among l:N, a:N (1|0), m:N ('' = none), q:N ('' = none), w:N
-- returns 1 updated, 0 no such key
local n = ARGV[1]
local r, was_current = rotation_with_key(KEYS[1], n, ARGV[2])
if not r then
  return 0
end
-- disabled or expired (a key only cooling down keeps its lifetime)
local restarts = not r.active[n] or lifetime_ended(r, n)
local active = nil
local reweighed = false
for i = 5, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  if ARGV[i] == 'a:' .. n then
    active = ARGV[i + 1] == '1'
  elseif ARGV[i] == 'w:' .. n then
    reweighed = true
  end
end
if reweighed or active ~= nil then
  restart_weighted(KEYS[1], r.ids)
end

if active == true then
  pin_current(r, KEYS[2], ARGV[4], ARGV[3])
  redis.call('HDEL', KEYS[1], 'dr:' .. n, 'f:' .. n, 'fw:' .. n, 'b:' .. n)
  if r.cooling and r.cooling[n] then
    r.cooling[n] = nil
    store_cooling(KEYS[1], r.cooling)
  end
  if restarts then
    redis.call('HDEL', KEYS[1], 't:' .. n, 'x:' .. n)
  end
  -- an enabled key ends a no-active-keys episode
  redis.call('HDEL', KEYS[1], 'noact')
elseif active == false and was_current == n then
  r.active[n] = false
  local to = next_after(r, n)
  if to then
    redis.call('HSET', KEYS[1], r.pointer_field, to)
    emit_rotated(r, KEYS[2], ARGV[4], ARGV[3], n, to, 'disabled')
  end
  -- with no usable key left the pointer stays: the next delivery answers 503 (and records
  -- service.no_active_keys)
end
return 1
