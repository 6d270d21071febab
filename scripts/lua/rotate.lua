-- rotate: advance a manual-policy service's primary to the next usable (active) key.
-- include: rotation
-- KEYS[1] service hash {t:T}:svc:<slug>   KEYS[2] event stream {t:T}:events
-- ARGV[1] service slug   ARGV[2] event stream cap (approximate)
-- Returns {'ok', from_key_id, to_key_id} | {'service'} | {'policy', policy} | {'nokeys'}
-- key.rotated (reason 'manual') is recorded only when the primary actually changes (one
-- active key: no-op).

local r = read_rotation(KEYS[1], 0)  -- the manual policy has no clock
if not r then
  return {'service'}
end
if r.policy ~= 'manual' then
  return {'policy', r.policy}
end
-- the effective primary is what next_key delivers now: the first active key from `cur`
local from = current_key(r)
if not from then
  return {'nokeys'}
end
local to = next_after(r, from) or from
redis.call('HSET', KEYS[1], 'cur', to)
if to ~= from then
  emit_rotated(r, KEYS[2], ARGV[2], ARGV[1], from, to, 'manual')
end
return {'ok', from, to}
