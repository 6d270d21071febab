-- key_add: append a provider key to a service's rotation, atomically with respect to delivery.
-- KEYS[1] {t:T}:svc:<slug>
-- ARGV[1] key id N (from INCR {t:T}:seq)   ARGV[2] label   ARGV[3] sealed secret (AES-GCM blob)
-- ARGV[4] max daily requests ('' = none)   ARGV[5] created_ms   ARGV[6] masked form of the secret
-- returns 1 added, 0 no such service (deleted since the caller looked: nothing written)
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local n = ARGV[1]
local ids = redis.call('HGET', KEYS[1], 'ids') or ''
if ids == '' then
  ids = n
else
  ids = ids .. ',' .. n
end
redis.call('HSET', KEYS[1], 'ids', ids,
  'l:' .. n, ARGV[2], 'c:' .. n, ARGV[3], 'a:' .. n, '1', 'm:' .. n, ARGV[4],
  'n:' .. n, ARGV[5], 'k:' .. n, ARGV[6])
-- a new active key ends a no-active-keys episode: the next one is recorded again
redis.call('HDEL', KEYS[1], 'noact')
return 1
