-- rotate: advance a manual-policy service's primary to the next usable (active) key.
-- include: rotation
-- KEYS[1] service hash {t:T}:svc:<slug>   KEYS[2] event stream {t:T}:events
-- ARGV[1] service slug   ARGV[2] event stream cap (approximate)
-- ARGV[3] now_ms ('' = Redis TIME): whether a key's cooldown has ended (key health)
-- Returns {'ok', from_key_id, to_key_id} | {'service'} | {'policy', policy} | {'nokeys'}
-- key.rotated (reason 'manual') is recorded only when the primary actually changes (one
-- active key: no-op).

-- the manual policy has no lifetimes, but key health has cooldowns: an entry whose time has
-- passed stays until the key is next delivered, and a spare key of a manual service never is
local r = read_rotation(KEYS[1], clock_ms(ARGV[3]))
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
