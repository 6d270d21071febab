-- key_add: append provider keys to a service's rotation, all or none, atomically with respect
-- to delivery (a bulk add is one call: a crash never leaves half of it). New keys restart the
-- weighted policy's cycle (lib/rotation.lua restart_weighted).
-- include: rotation
-- KEYS[1] {t:T}:svc:<slug>
-- ARGV[1] created_ms
-- ARGV[2] the ids, ascending and comma-separated, of the service's keys whose masked form
--         ends as one of ARGV[4 .. 3+E] when the caller decrypted them to check that no new
--         secret is already held (the script cannot decrypt); '*' = not checked
-- ARGV[3] E, how many endings follow: how the masked form of a key equal to a new one ends
--         (a bullet, then 0-4 of its last characters: domain/masking.py endings)
-- ARGV[4+E ..] seven per key, in the order they join the rotation: key id N (drawn from
--            {t:T}:seq by the caller: the sealed secret is bound to it), label, sealed secret
--            (AES-GCM blob), max daily requests ('' = none), masked form of the secret,
--            weight (weighted policy), max requests per minute ('' = none)
-- returns the number of keys added; 0 when there is no such service (deleted since the caller
-- looked), -1 when those keys are no longer ARGV[2] (check again): nothing written
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local first = 4 + tonumber(ARGV[3])
if (#ARGV - first + 1) % 7 ~= 0 then
  return redis.error_reply('key_add: ARGV[4+E ..] must hold seven values per key')
end
local created = ARGV[1]
local ids = redis.call('HGET', KEYS[1], 'ids') or ''
if ARGV[2] ~= '*' then
  -- endings by byte length: each stored form is looked up once per length, not per ending
  local endings, lengths, alike = {}, {}, {}
  for e = 4, first - 1 do
    endings[ARGV[e]] = true
    lengths[#ARGV[e]] = true
  end
  for _, n in ipairs(split_ids(ids)) do
    local masked = redis.call('HGET', KEYS[1], 'k:' .. n) or ''
    for length in pairs(lengths) do
      if endings[string.sub(masked, -length)] then
        alike[#alike + 1] = tonumber(n)
        break
      end
    end
  end
  table.sort(alike)
  if table.concat(alike, ',') ~= ARGV[2] then
    return -1
  end
end
local added = 0
restart_weighted(KEYS[1], split_ids(ids))
for i = first, #ARGV, 7 do
  local n = ARGV[i]
  ids = (ids == '') and n or (ids .. ',' .. n)
  redis.call('HSET', KEYS[1], 'l:' .. n, ARGV[i + 1], 'c:' .. n, ARGV[i + 2], 'a:' .. n, '1',
    'm:' .. n, ARGV[i + 3], 'n:' .. n, created, 'k:' .. n, ARGV[i + 4], 'w:' .. n, ARGV[i + 5],
    'q:' .. n, ARGV[i + 6])
  added = added + 1
end
redis.call('HSET', KEYS[1], 'ids', ids)
-- a new active key ends a no-active-keys episode: the next one is recorded again
redis.call('HDEL', KEYS[1], 'noact')
return added
